//! Features for the trained model: hashed tokens of the subject, the body
//! text, link domains, message shapes, and authentication results when the
//! host checked them. The same code runs in the policy and in
//! `postern train`, so training and scoring see identical features.

use postern_policy_sdk::{AuthResult, Authentication, Message};

use crate::scan::BodyStats;
use crate::text::{domain_of, org_domain};

/// Body words read at most: the opening of a message says what it is, and
/// this bounds the model's cost per message.
const MAX_BODY_WORDS: usize = 4000;
/// Longest token kept.
const MAX_TOKEN: usize = 24;

/// One feature: its 64-bit hash and, for explanations, its text (borrowed
/// from the message: extraction allocates nothing per token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature<'m> {
    /// FNV-1a of the prefix and the ASCII-lower-cased token.
    pub hash: u64,
    /// `s:` subject word, `b:` body word, `u:` link domain, `x:` shape,
    /// `a:spf-`, `a:dkim-`, `a:dmarc-` authentication result.
    pub prefix: &'static str,
    /// The token as found.
    pub text: &'m str,
}

impl Feature<'_> {
    /// The prefixed, lower-cased token (`b:viagra`).
    pub fn token(&self) -> String {
        format!("{}{}", self.prefix, self.text.to_ascii_lowercase())
    }
}

/// The distinct features of a message, in order of appearance.
pub fn extract<'m>(msg: &'m Message<'_>, auth: &Authentication) -> Vec<Feature<'m>> {
    extract_with(msg, auth, &mut BodyStats::default())
}

/// [`extract`], also counting the primary text into `stats` (the rules'
/// body statistics) in the same pass.
pub fn extract_with<'m>(msg: &'m Message<'_>, auth: &Authentication, stats: &mut BodyStats) -> Vec<Feature<'m>> {
    let mut out = Vec::with_capacity(512);
    if let Some(subject) = msg.subject() {
        words(subject, "s:", usize::MAX, &mut out, &mut BodyStats::default());
    }
    words(msg.primary_text(), "b:", MAX_BODY_WORDS, &mut out, stats);
    for link in msg.links() {
        if !link.domain.is_empty() {
            push(&mut out, "u:", org_domain(&link.domain));
        }
    }
    // Header names are deliberately not features: in old corpora, ham
    // (mailing lists) lacks headers every modern message carries
    // (MIME-Version, Content-Type), so a model would learn to junk all of
    // today's mail for having them.
    // No "has HTML" feature: in this corpus spam is HTML and ham is not,
    // which is not true of today's mail (receipts, newsletters, replies).
    let shapes: [(&str, bool); 4] = [
        ("attachment", !msg.attachments().is_empty()),
        ("no-subject", msg.subject().is_none_or(|s| s.trim().is_empty())),
        ("many-links", msg.links().len() > 10),
        ("reply-to-elsewhere", reply_to_elsewhere(msg)),
    ];
    for (name, on) in shapes {
        if on {
            push(&mut out, "x:", name);
        }
    }
    for (prefix, result) in [("a:spf-", &auth.spf_mail_from.result), ("a:dmarc-", &auth.dmarc.result)] {
        if let Some(r) = auth_word(result) {
            push(&mut out, prefix, r);
        }
    }
    if let Some(r) = auth.dkim.first().and_then(|d| auth_word(&d.result)) {
        push(&mut out, "a:dkim-", r);
    }
    dedup(out)
}

/// Keeps the first occurrence of each feature, in order. Distinct means a
/// distinct low 16 bits of the hash: a bitset of 8 KB on the stack instead
/// of a sort (a message's few collisions drop a token or two, identically
/// in training and scoring).
fn dedup(mut features: Vec<Feature<'_>>) -> Vec<Feature<'_>> {
    let mut seen = [0u64; 1024];
    features.retain(|f| {
        let key = (f.hash & 0xffff) as usize;
        let (word, bit) = (key / 64, 1u64 << (key % 64));
        let fresh = seen[word] & bit == 0;
        seen[word] |= bit;
        fresh
    });
    features
}

fn reply_to_elsewhere(msg: &Message) -> bool {
    match (msg.from().first(), msg.reply_to().first()) {
        (Some(f), Some(r)) => {
            let (fd, rd) = (domain_of(&f.address), domain_of(&r.address));
            !rd.is_empty() && org_domain(&fd) != org_domain(&rd)
        }
        _ => false,
    }
}

fn auth_word(r: &AuthResult) -> Option<&'static str> {
    Some(match r {
        AuthResult::Pass => "pass",
        AuthResult::Fail => "fail",
        AuthResult::Softfail => "softfail",
        AuthResult::Neutral => "neutral",
        AuthResult::None => "none",
        AuthResult::Temperror | AuthResult::Permerror => "error",
        AuthResult::NotChecked => return None,
    })
}

/// Words of 2..=24 bytes (as [`BodyStats::scan_words`] splits them; `'`
/// and `-` trimmed at the ends; not all digits; not a function word), at
/// most `max`, counted into `stats` on the way. Allocation-free: this is the
/// model's hot loop.
fn words<'m>(text: &'m str, prefix: &'static str, max: usize, out: &mut Vec<Feature<'m>>, stats: &mut BodyStats) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len().min(max.saturating_mul(8)) / 6);
    let mut seen = 0usize;
    stats.scan_words(text, |start, end| {
        if seen >= max {
            return;
        }
        seen += 1;
        let (mut s, mut e) = (start, end);
        while s < e && matches!(bytes[s], b'\'' | b'-') {
            s += 1;
        }
        while e > s && matches!(bytes[e - 1], b'\'' | b'-') {
            e -= 1;
        }
        let w = &bytes[s..e];
        if !(2..=MAX_TOKEN).contains(&w.len()) || w.iter().all(u8::is_ascii_digit) || is_stop_word(w) {
            return;
        }
        // The trimmed ends are ASCII, so these are char boundaries.
        if let Some(word) = text.get(s..e) {
            push(out, prefix, word);
        }
    });
}

/// Function words: in an old corpus, marketing spam says "you", "your",
/// "our" and "please" far more than the mailing-list ham does, so a model
/// learns to junk every polite support request. They carry no topic: leave
/// them out.
pub const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "before",
    "being", "but", "by", "can", "could", "dear", "did", "do", "does", "for", "from", "get", "had", "has", "have",
    "he", "hello", "her", "here", "hi", "him", "his", "how", "if", "in", "into", "is", "it", "its", "just", "kind",
    "let", "me", "more", "most", "my", "no", "not", "now", "of", "on", "one", "only", "or", "other", "our", "ours",
    "out", "please", "regards", "see", "she", "so", "some", "thank", "thanks", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "those", "to", "up", "us", "very", "was", "we", "were", "what", "when", "which",
    "who", "why", "will", "with", "would", "you", "your", "yours",
];

fn is_stop_word(w: &[u8]) -> bool {
    let mut buf = [0u8; 8];
    if w.len() > buf.len() {
        return false;
    }
    for (d, s) in buf.iter_mut().zip(w) {
        *d = s.to_ascii_lowercase();
    }
    // A match compiles to a switch on length, then a few comparisons.
    matches!(
        &buf[..w.len()],
        b"a" | b"about"
            | b"after"
            | b"again"
            | b"all"
            | b"also"
            | b"am"
            | b"an"
            | b"and"
            | b"any"
            | b"are"
            | b"as"
            | b"at"
            | b"be"
            | b"been"
            | b"before"
            | b"being"
            | b"but"
            | b"by"
            | b"can"
            | b"could"
            | b"dear"
            | b"did"
            | b"do"
            | b"does"
            | b"for"
            | b"from"
            | b"get"
            | b"had"
            | b"has"
            | b"have"
            | b"he"
            | b"hello"
            | b"her"
            | b"here"
            | b"hi"
            | b"him"
            | b"his"
            | b"how"
            | b"if"
            | b"in"
            | b"into"
            | b"is"
            | b"it"
            | b"its"
            | b"just"
            | b"kind"
            | b"let"
            | b"me"
            | b"more"
            | b"most"
            | b"my"
            | b"no"
            | b"not"
            | b"now"
            | b"of"
            | b"on"
            | b"one"
            | b"only"
            | b"or"
            | b"other"
            | b"our"
            | b"ours"
            | b"out"
            | b"please"
            | b"regards"
            | b"see"
            | b"she"
            | b"so"
            | b"some"
            | b"thank"
            | b"thanks"
            | b"that"
            | b"the"
            | b"their"
            | b"them"
            | b"then"
            | b"there"
            | b"these"
            | b"they"
            | b"this"
            | b"those"
            | b"to"
            | b"up"
            | b"us"
            | b"very"
            | b"was"
            | b"we"
            | b"were"
            | b"what"
            | b"when"
            | b"which"
            | b"who"
            | b"why"
            | b"will"
            | b"with"
            | b"would"
            | b"you"
            | b"your"
            | b"yours"
    )
}

fn push<'m>(out: &mut Vec<Feature<'m>>, prefix: &'static str, text: &'m str) {
    let hash = fnv1a(prefix.as_bytes(), text.as_bytes());
    out.push(Feature { hash, prefix, text });
}

/// FNV-1a over `a` then `b` ASCII-lower-cased, as one string.
pub fn fnv1a(a: &[u8], b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in a {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    for &x in b {
        h ^= u64::from(x.to_ascii_lowercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_policy_sdk::{Address, Link, MessageData};

    #[test]
    fn features_are_prefixed_distinct_and_deterministic() {
        let msg = Message::new(MessageData {
            subject: Some("FREE money, free!".into()),
            text_body: "Click here: free 100% risk-free offer 12345".into(),
            from: vec![Address { name: None, address: "a@x.test".into() }],
            reply_to: vec![Address { name: None, address: "b@y.test".into() }],
            links: vec![Link { url: "http://bit.ly/x".into(), domain: "bit.ly".into(), text: None }],
            ..Default::default()
        });
        let f = extract(&msg, &Authentication::default());
        let tokens: Vec<String> = f.iter().map(Feature::token).collect();
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        for t in ["s:free", "s:money", "b:click", "b:free", "b:100%", "b:risk-free", "u:bit.ly", "x:reply-to-elsewhere"]
        {
            assert!(tokens.contains(&t), "{t} missing from {tokens:?}");
        }
        assert!(!tokens.contains(&"b:12345"), "pure numbers are noise");
        assert!(!tokens.iter().any(|t| t.starts_with("a:")), "unchecked auth adds nothing");
        assert_eq!(tokens.iter().filter(|t| **t == "s:free").count(), 1);
        assert_eq!(f, extract(&msg, &Authentication::default()));
        let mut keys: Vec<u64> = f.iter().map(|f| f.hash & 0xffff).collect();
        keys.sort_unstable();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "no two features share a key");
    }

    #[test]
    fn stop_words_are_sorted_and_matched_in_any_case() {
        assert!(STOP_WORDS.iter().all(|w| is_stop_word(w.as_bytes())), "the list and the matcher agree");
        assert!(is_stop_word(b"YOUR") && is_stop_word(b"please") && !is_stop_word(b"viagra"));
    }
}
