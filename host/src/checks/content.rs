//! Content checks: `text_oversized` and the fingerprint behind
//! `duplicate_text`.

use sha2::{Digest, Sha256};

use crate::message::ParsedMessage;

/// True when the message's text content (decoded text and HTML bodies) is
/// over `max` bytes.
pub fn text_oversized(msg: &ParsedMessage, max: u64) -> bool {
    msg.text_bytes > max
}

/// Fingerprint of the message's normalised text: the plain-text body (or the
/// HTML's text when there is none), lower-cased, whitespace collapsed.
/// `None` when there is no text: empty messages are not duplicates of each
/// other.
pub fn text_fingerprint(msg: &ParsedMessage) -> Option<String> {
    let text = if msg.text_body.trim().is_empty() { &msg.html_text } else { &msg.text_body };
    let mut hasher = Sha256::new();
    let mut any = false;
    for word in text.split_whitespace() {
        if any {
            hasher.update(b" ");
        }
        hasher.update(word.to_lowercase().as_bytes());
        any = true;
    }
    any.then(|| hex::encode(&hasher.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str, html_text: &str) -> ParsedMessage {
        ParsedMessage { text_body: text.into(), html_text: html_text.into(), ..ParsedMessage::default() }
    }

    #[test]
    fn fingerprint_ignores_case_and_spacing_only() {
        let a = text_fingerprint(&msg("Hello   World\r\n", "")).unwrap();
        assert_eq!(Some(a.clone()), text_fingerprint(&msg("hello world", "")));
        assert_ne!(Some(a), text_fingerprint(&msg("hello world!", "")));
        assert_eq!(text_fingerprint(&msg("  ", "")), None);
        assert_eq!(text_fingerprint(&msg("", "from html")), text_fingerprint(&msg("From HTML", "")));
    }
}
