//! The message model: what the host extracts from the raw bytes once, with
//! `mail-parser`, and hands to checks and policies.

mod links;

use std::borrow::Cow;

use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};

use crate::runtime::types::{Address, Attachment, Header, Link};

pub use links::extract_links;

/// Hard limits on what is extracted from one message, so a hostile message
/// costs bounded work and memory.
#[derive(Debug, Clone)]
pub struct ParseLimits {
    /// Header fields of the top-level message; more is refused.
    pub max_headers: usize,
    /// MIME parts in all, nested messages included; more is refused.
    pub max_parts: usize,
    /// Nesting depth of multiparts and attached messages; deeper is refused.
    pub max_depth: usize,
    /// Bytes of body text kept per body kind (text, HTML).
    pub max_body_bytes: usize,
    /// Links kept.
    pub max_links: usize,
    /// Attachments described.
    pub max_attachments: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_headers: 1000,
            max_parts: 500,
            max_depth: 20,
            max_body_bytes: 4 << 20,
            max_links: 256,
            max_attachments: 100,
        }
    }
}

/// Why a message could not be parsed at all.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The input holds no message (empty, or no header section).
    #[error("not an RFC 5322 message (no header section)")]
    NotAMessage,
    /// More header fields than the limit.
    #[error("{0} header fields (limit {1})")]
    TooManyHeaders(usize, usize),
    /// More MIME parts than the limit.
    #[error("{0} MIME parts (limit {1})")]
    TooManyParts(usize, usize),
    /// MIME nesting deeper than the limit.
    #[error("MIME nesting deeper than {0}")]
    TooDeep(usize),
}

impl ParseError {
    /// The catalog code that refuses such a message: no headers is
    /// `headers_missing`, too many is `headers_unacceptable`, too many or too
    /// deeply nested parts is `text_oversized`.
    pub fn code(&self) -> crate::verdict::Code {
        use crate::verdict::Code;
        match self {
            ParseError::NotAMessage => Code::HeadersMissing,
            ParseError::TooManyHeaders(..) => Code::HeadersUnacceptable,
            ParseError::TooManyParts(..) | ParseError::TooDeep(_) => Code::TextOversized,
        }
    }
}

/// A parsed message: headers, addresses, bodies, attachments and links.
#[derive(Debug, Clone, Default)]
pub struct ParsedMessage {
    /// Every header field in order (name, decoded or unfolded value).
    pub headers: Vec<Header>,
    /// From addresses.
    pub from: Vec<Address>,
    /// To addresses.
    pub to: Vec<Address>,
    /// Cc addresses.
    pub cc: Vec<Address>,
    /// Reply-To addresses.
    pub reply_to: Vec<Address>,
    /// Decoded subject.
    pub subject: Option<String>,
    /// Message-ID without brackets.
    pub message_id: Option<String>,
    /// All text/plain parts, joined by blank lines.
    pub text_body: String,
    /// All text/html parts, joined.
    pub html_body: String,
    /// The HTML body converted to text.
    pub html_text: String,
    /// Attachment metadata.
    pub attachments: Vec<Attachment>,
    /// Links in the bodies.
    pub links: Vec<Link>,
    /// Raw size in bytes.
    pub size: u64,
    /// Decoded size of all text and HTML body parts, before any cap.
    pub text_bytes: u64,
}

impl ParsedMessage {
    /// Parses a raw RFC 5322 message.
    pub fn parse(raw: &[u8], limits: &ParseLimits) -> Result<Self, ParseError> {
        let msg = MessageParser::default().parse(raw).ok_or(ParseError::NotAMessage)?;
        if msg.headers().is_empty() {
            return Err(ParseError::NotAMessage);
        }
        if msg.headers().len() > limits.max_headers {
            return Err(ParseError::TooManyHeaders(msg.headers().len(), limits.max_headers));
        }
        check_shape(&msg, limits)?;
        let headers =
            msg.headers().iter().map(|h| Header { name: h.name().to_string(), value: header_text(h, raw) }).collect();

        let mut text_body = String::new();
        let mut html_body = String::new();
        let mut text_bytes = 0u64;
        for part in msg.parts.iter() {
            let is_attachment =
                part.content_disposition().is_some_and(|d| d.is_attachment()) || part.attachment_name().is_some();
            if is_attachment {
                continue;
            }
            match &part.body {
                PartType::Text(t) => {
                    text_bytes += t.len() as u64;
                    push_capped(&mut text_body, t, "\n\n", limits.max_body_bytes)
                }
                PartType::Html(h) => {
                    text_bytes += h.len() as u64;
                    push_capped(&mut html_body, h, "\n", limits.max_body_bytes)
                }
                _ => {}
            }
        }
        let html_text =
            if html_body.is_empty() { String::new() } else { mail_parser::decoders::html::html_to_text(&html_body) };
        let attachments = msg
            .attachments()
            .take(limits.max_attachments)
            .map(|part| Attachment {
                filename: part.attachment_name().map(str::to_string),
                content_type: part
                    .content_type()
                    .map(|ct| match ct.subtype() {
                        Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                        None => ct.ctype().to_ascii_lowercase(),
                    })
                    .unwrap_or_else(|| "application/octet-stream".into()),
                size: part.len() as u64,
                inline: part.content_disposition().is_some_and(|d| d.is_inline()),
            })
            .collect();
        let links = extract_links(&text_body, &html_body, limits.max_links);
        Ok(ParsedMessage {
            headers,
            from: addresses(msg.from()),
            to: addresses(msg.to()),
            cc: addresses(msg.cc()),
            reply_to: addresses(msg.reply_to()),
            subject: msg.subject().map(str::to_string),
            message_id: msg.message_id().map(str::to_string),
            text_body,
            html_body,
            html_text,
            attachments,
            links,
            size: raw.len() as u64,
            text_bytes,
        })
    }

    /// Values of every header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Vec<String> {
        self.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.clone()).collect()
    }
}

/// Counts parts and nesting depth without recursion (nested messages
/// included), refusing a message past the limits.
fn check_shape(msg: &mail_parser::Message<'_>, limits: &ParseLimits) -> Result<(), ParseError> {
    let mut parts = 0usize;
    // (message, part index, depth)
    let mut stack = vec![(msg, 0u32, 1usize)];
    while let Some((m, id, depth)) = stack.pop() {
        if depth > limits.max_depth {
            return Err(ParseError::TooDeep(limits.max_depth));
        }
        parts += 1;
        if parts > limits.max_parts {
            return Err(ParseError::TooManyParts(parts, limits.max_parts));
        }
        match m.parts.get(id as usize).map(|p| &p.body) {
            Some(PartType::Multipart(children)) => {
                stack.extend(children.iter().filter(|c| **c != id).map(|c| (m, *c, depth + 1)));
            }
            Some(PartType::Message(inner)) => stack.push((inner, 0, depth + 1)),
            _ => {}
        }
    }
    Ok(())
}

/// Appends `part` to `out` (separated by `sep`) without exceeding `cap` bytes.
fn push_capped(out: &mut String, part: &str, sep: &str, cap: usize) {
    if out.len() >= cap {
        return;
    }
    if !out.is_empty() {
        out.push_str(sep);
    }
    let room = cap.saturating_sub(out.len());
    let mut end = part.len().min(room);
    while !part.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&part[..end]);
}

/// A header's value as text: decoded where mail-parser decoded it as text,
/// otherwise the raw value unfolded.
fn header_text(h: &mail_parser::Header<'_>, raw: &[u8]) -> String {
    match h.value() {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(list) => list.join(", "),
        _ => {
            let (start, end) = (h.offset_start() as usize, h.offset_end() as usize);
            let bytes = raw.get(start..end.min(raw.len())).unwrap_or_default();
            let text: Cow<'_, str> = String::from_utf8_lossy(bytes);
            text.split(['\r', '\n']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
        }
    }
}

fn addresses(addr: Option<&mail_parser::Address<'_>>) -> Vec<Address> {
    addr.map(|a| {
        a.iter()
            .filter_map(|a| Some(Address { name: a.name().map(str::to_string), address: a.address()?.to_string() }))
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTIPART: &[u8] = b"From: \"Ann\" <ann@shop.test>\r\nTo: help@support.acme.test, bob@acme.test\r\nReply-To: billing@shop.test\r\nSubject: =?utf-8?q?Caf=C3=A9_order?=\r\nMessage-ID: <m1@shop.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee https://shop.test/order/1 please.\r\n--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>See <a href=\"https://shop.test/order/1\">your order</a> &amp; more</p>\r\n--b2--\r\n--b1\r\nContent-Type: application/pdf; name=invoice.pdf\r\nContent-Disposition: attachment; filename=invoice.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n";

    #[test]
    fn parses_addresses_subject_bodies_attachments_and_links() {
        let m = ParsedMessage::parse(MULTIPART, &ParseLimits::default()).unwrap();
        assert_eq!(m.from, vec![Address { name: Some("Ann".into()), address: "ann@shop.test".into() }]);
        assert_eq!(m.to.len(), 2);
        assert_eq!(m.reply_to[0].address, "billing@shop.test");
        assert_eq!(m.subject.as_deref(), Some("Café order"));
        assert_eq!(m.message_id.as_deref(), Some("m1@shop.test"));
        assert!(m.text_body.contains("See https://shop.test/order/1"));
        assert!(m.html_body.contains("<a href"));
        assert!(m.html_text.contains("your order & more"), "{}", m.html_text);
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].filename.as_deref(), Some("invoice.pdf"));
        assert_eq!(m.attachments[0].content_type, "application/pdf");
        assert_eq!(m.attachments[0].size, 9);
        assert_eq!(m.links.len(), 1, "{:?}", m.links);
        assert_eq!(m.links[0].text.as_deref(), Some("your order"));
        assert_eq!(m.header("date"), vec!["Mon, 1 Jan 2024 10:00:00 +0000".to_string()]);
        assert_eq!(m.size, MULTIPART.len() as u64);
    }

    #[test]
    fn body_text_is_capped_on_a_char_boundary() {
        let mut out = String::new();
        push_capped(&mut out, "ééé", "", 3);
        assert_eq!(out, "é");
    }

    #[test]
    fn limits_on_headers_parts_and_depth_are_refusals() {
        let limits = ParseLimits { max_headers: 3, max_parts: 4, max_depth: 2, ..ParseLimits::default() };
        let many_headers = b"From: a@b.test\r\nTo: c@d.test\r\nX-A: 1\r\nX-B: 2\r\n\r\nhi";
        assert!(matches!(ParsedMessage::parse(many_headers, &limits), Err(ParseError::TooManyHeaders(4, 3))));
        let limits = ParseLimits { max_headers: 100, ..limits };
        // root multipart + 2 alternatives + attachment = 4 parts at depth 2.
        assert!(ParsedMessage::parse(MULTIPART, &limits).is_err(), "MULTIPART nests 3 deep");
        let deep = ParseLimits { max_depth: 3, max_parts: 4, ..limits.clone() };
        assert!(ParsedMessage::parse(MULTIPART, &deep).is_err(), "MULTIPART has 6 parts");
        let ok = ParseLimits { max_depth: 3, max_parts: 6, ..limits };
        assert!(ParsedMessage::parse(MULTIPART, &ok).is_ok());
        let nested: String =
            (0..30).map(|i| format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")).collect();
        let raw = format!(
            "From: a@b.test\r\nTo: c@d.test\r\nMIME-Version: 1.0\r\n{nested}Content-Type: text/plain\r\n\r\nx\r\n"
        );
        let err = ParsedMessage::parse(raw.as_bytes(), &ParseLimits::default()).unwrap_err();
        assert!(matches!(err, ParseError::TooDeep(20)), "{err}");
        assert_eq!(err.code(), crate::verdict::Code::TextOversized);
    }

    #[test]
    fn empty_input_is_not_a_message() {
        assert!(matches!(ParsedMessage::parse(b"", &ParseLimits::default()), Err(ParseError::NotAMessage)));
    }
}
