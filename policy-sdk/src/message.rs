//! Lazy access to the parsed message.
//!
//! Inside the host, every accessor crosses into the host once and caches the
//! answer, so a policy copies in only the parts of the message it reads. In
//! native unit tests the message is built from a [`MessageData`].

#[cfg(target_arch = "wasm32")]
use std::cell::OnceCell;
use std::marker::PhantomData;

use crate::{Address, Attachment, Header, Link};

/// The parsed message, as every stage sees it.
pub struct Message<'a> {
    source: Source<'a>,
}

/// Where the message's parts come from.
enum Source<'a> {
    /// Built in-process (native tests).
    Owned(Box<MessageData>, PhantomData<&'a ()>),
    /// Borrowed from the host for the duration of one call.
    #[cfg(target_arch = "wasm32")]
    Host(&'a crate::wit::postern::policy::types::Message, Box<Cache>),
}

/// The parts of a message, owned: build one to unit-test a policy natively.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageData {
    /// Every header field in order.
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
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// Text of the text/plain parts.
    pub text_body: String,
    /// Markup of the text/html parts.
    pub html_body: String,
    /// The HTML body as plain text.
    pub html_text: String,
    /// Attachment metadata.
    pub attachments: Vec<Attachment>,
    /// Links found in the bodies.
    pub links: Vec<Link>,
    /// Raw size in bytes.
    pub size: u64,
}

/// Answers already fetched from the host.
#[cfg(target_arch = "wasm32")]
#[derive(Default)]
struct Cache {
    headers: OnceCell<Vec<Header>>,
    from: OnceCell<Vec<Address>>,
    to: OnceCell<Vec<Address>>,
    cc: OnceCell<Vec<Address>>,
    reply_to: OnceCell<Vec<Address>>,
    subject: OnceCell<Option<String>>,
    message_id: OnceCell<Option<String>>,
    text_body: OnceCell<String>,
    html_body: OnceCell<String>,
    html_text: OnceCell<String>,
    attachments: OnceCell<Vec<Attachment>>,
    links: OnceCell<Vec<Link>>,
}

/// One accessor: the owned field natively, the cached host answer in a
/// component.
macro_rules! accessor {
    ($(#[$doc:meta])* $name:ident -> $ret:ty, $conv:expr) => {
        $(#[$doc])*
        pub fn $name(&self) -> $ret {
            match &self.source {
                Source::Owned(data, _) => $conv(&data.$name),
                #[cfg(target_arch = "wasm32")]
                Source::Host(handle, cache) => $conv(cache.$name.get_or_init(|| handle.$name())),
            }
        }
    };
}

impl<'a> Message<'a> {
    /// A message made of owned parts (for native tests).
    pub fn new(data: MessageData) -> Message<'static> {
        Message { source: Source::Owned(Box::new(data), PhantomData) }
    }

    #[cfg(target_arch = "wasm32")]
    pub(crate) fn from_host(handle: &'a crate::wit::postern::policy::types::Message) -> Self {
        Message { source: Source::Host(handle, Box::default()) }
    }

    accessor!(
        /// Every header field in order of appearance.
        headers -> &[Header], Vec::as_slice
    );
    accessor!(
        /// Addresses of the From header.
        from -> &[Address], Vec::as_slice
    );
    accessor!(
        /// Addresses of the To header.
        to -> &[Address], Vec::as_slice
    );
    accessor!(
        /// Addresses of the Cc header.
        cc -> &[Address], Vec::as_slice
    );
    accessor!(
        /// Addresses of the Reply-To header.
        reply_to -> &[Address], Vec::as_slice
    );
    accessor!(
        /// Decoded subject, if any.
        subject -> Option<&str>, Option::as_deref
    );
    accessor!(
        /// Message-ID without angle brackets, if any.
        message_id -> Option<&str>, Option::as_deref
    );
    accessor!(
        /// Text of the text/plain parts, joined.
        text_body -> &str, String::as_str
    );
    accessor!(
        /// Markup of the text/html parts, joined.
        html_body -> &str, String::as_str
    );
    accessor!(
        /// The HTML body converted to plain text.
        html_text -> &str, String::as_str
    );
    accessor!(
        /// Attachment metadata.
        attachments -> &[Attachment], Vec::as_slice
    );
    accessor!(
        /// Links found in the text and HTML bodies.
        links -> &[Link], Vec::as_slice
    );

    /// Values of every header with this name (case-insensitive), in order.
    pub fn header(&self, name: &str) -> Vec<String> {
        match &self.source {
            Source::Owned(data, _) => {
                data.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.clone()).collect()
            }
            #[cfg(target_arch = "wasm32")]
            Source::Host(handle, _) => handle.header(name),
        }
    }

    /// Size of the raw message in bytes.
    pub fn size(&self) -> u64 {
        match &self.source {
            Source::Owned(data, _) => data.size,
            #[cfg(target_arch = "wasm32")]
            Source::Host(handle, _) => handle.size(),
        }
    }

    /// The body to read once: the longer of the text/plain parts and the
    /// HTML's text. A multipart/alternative message says the same thing
    /// twice; the longer side also defeats a benign plain-text stub in front
    /// of a different HTML part.
    pub fn primary_text(&self) -> &str {
        let (text, html) = (self.text_body(), self.html_text());
        if html.len() > text.len() { html } else { text }
    }

    /// Both bodies as text: the text/plain parts, then the HTML converted to
    /// text.
    pub fn all_text(&self) -> String {
        let (text, html) = (self.text_body(), self.html_text());
        match (text.is_empty(), html.is_empty()) {
            (_, true) => text.to_owned(),
            (true, false) => html.to_owned(),
            (false, false) => format!("{text}\n\n{html}"),
        }
    }
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message").field("subject", &self.subject()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_is_case_insensitive_and_ordered() {
        let msg = Message::new(MessageData {
            headers: vec![
                Header { name: "Received".into(), value: "a".into() },
                Header { name: "X-Other".into(), value: "x".into() },
                Header { name: "received".into(), value: "b".into() },
            ],
            ..Default::default()
        });
        assert_eq!(msg.header("RECEIVED"), vec!["a".to_string(), "b".to_string()]);
        assert!(msg.header("Missing").is_empty());
    }

    #[test]
    fn all_text_joins_the_bodies_that_exist() {
        let both =
            Message::new(MessageData { text_body: "plain".into(), html_text: "html".into(), ..Default::default() });
        assert_eq!(both.all_text(), "plain\n\nhtml");
        let html_only = Message::new(MessageData { html_text: "html".into(), ..Default::default() });
        assert_eq!(html_only.all_text(), "html");
        let none = Message::new(MessageData::default());
        assert_eq!(none.all_text(), "");
    }

    #[test]
    fn primary_text_is_the_longer_body() {
        let stub = Message::new(MessageData {
            text_body: "View this in HTML".into(),
            html_text: "The real, much longer offer text".into(),
            ..Default::default()
        });
        assert_eq!(stub.primary_text(), "The real, much longer offer text");
        let plain = Message::new(MessageData { text_body: "only text".into(), ..Default::default() });
        assert_eq!(plain.primary_text(), "only text");
    }
}
