//! One pass over body text: word count, spam vocabulary, money signs and
//! capital letters, byte by byte. The scorer's hot loop: it allocates
//! nothing and reads each byte once (a `str::split` per word and a
//! substring search per term cost several times more in wasm).

/// What one pass over a text found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BodyStats {
    /// Words seen.
    pub words: usize,
    /// Distinct spam words, in order of first appearance (at most 5).
    pub spam_words: Vec<&'static str>,
    /// `$`, `€` and `£` signs.
    pub money_signs: usize,
    /// ASCII letters.
    pub letters: usize,
    /// ASCII capitals.
    pub capitals: usize,
}

macro_rules! vocabulary {
    ($($word:literal),* $(,)?) => {
        /// The spam vocabulary (lower case).
        pub const SPAM_WORDS: &[&str] = &[$($word),*];

        /// The word as listed, if `w` (lower case) is in the vocabulary.
        pub fn spam_word(w: &[u8]) -> Option<&'static str> {
            match w {
                $(x if x == $word.as_bytes() => Some($word),)*
                _ => None,
            }
        }
    };
}

vocabulary!(
    "100%",
    "beneficiary",
    "bonus",
    "casino",
    "cheap",
    "cialis",
    "confidential",
    "congratulations",
    "dating",
    "diet",
    "discount",
    "guarantee",
    "guaranteed",
    "inheritance",
    "investment",
    "limited",
    "lottery",
    "marketing",
    "meds",
    "mortgage",
    "offer",
    "opt-out",
    "optout",
    "pharmacy",
    "pills",
    "prescription",
    "promotion",
    "refinance",
    "remove",
    "replica",
    "risk-free",
    "rolex",
    "sex",
    "singles",
    "stock",
    "unsubscribe",
    "urgent",
    "viagra",
    "weight",
    "winner",
    "wire",
    "xxx",
);

/// Longest word worth looking up.
const MAX_WORD: usize = 16;

impl BodyStats {
    /// Adds one text to the counts.
    pub fn scan(&mut self, text: &str) {
        self.scan_words(text, |_, _| {});
    }

    /// Adds one text to the counts and calls `on_word(start, end)` with the
    /// byte range of every word, so the model's features come from the same
    /// single pass. A word is a run of letters, digits, `'`, `-`, `$`, `%`
    /// and non-ASCII bytes.
    pub fn scan_words(&mut self, text: &str, mut on_word: impl FnMut(usize, usize)) {
        let bytes = text.as_bytes();
        let mut word = [0u8; MAX_WORD];
        let (mut len, mut start, mut in_word, mut ascii_word) = (0usize, 0usize, false, true);
        for (i, &b) in bytes.iter().enumerate() {
            let part_of_word = b.is_ascii_alphanumeric() || matches!(b, b'\'' | b'-' | b'%' | b'$') || b >= 0x80;
            if part_of_word {
                if !in_word {
                    (in_word, len, start, ascii_word) = (true, 0, i, true);
                }
                if b >= 0x80 {
                    ascii_word = false;
                } else if len < MAX_WORD {
                    word[len] = b.to_ascii_lowercase();
                }
                len += 1;
                self.letters += b.is_ascii_alphabetic() as usize;
                self.capitals += b.is_ascii_uppercase() as usize;
            } else if in_word {
                in_word = false;
                self.end_word(&word, len, ascii_word);
                on_word(start, i);
            }
            match b {
                b'$' => self.money_signs += 1,
                // `€` is E2 82 AC and `£` is C2 A3 in UTF-8.
                0xAC if i >= 2 && bytes[i - 2] == 0xE2 && bytes[i - 1] == 0x82 => self.money_signs += 1,
                0xA3 if i >= 1 && bytes[i - 1] == 0xC2 => self.money_signs += 1,
                _ => {}
            }
        }
        if in_word {
            self.end_word(&word, len, ascii_word);
            on_word(start, bytes.len());
        }
    }

    fn end_word(&mut self, word: &[u8; MAX_WORD], len: usize, ascii: bool) {
        self.words += 1;
        if !ascii || len > MAX_WORD || self.spam_words.len() >= 5 {
            return;
        }
        if let Some(w) = spam_word(&word[..len])
            && !self.spam_words.contains(&w)
        {
            self.spam_words.push(w);
        }
    }
}

/// True when inline CSS hides text: `display:none`, `visibility:hidden` or
/// a zero `font-size`, in any case and with optional spaces.
pub fn hides_text(html: &str) -> bool {
    let bytes = html.as_bytes();
    let mut from = 0;
    while let Some(off) = bytes[from..].iter().position(|&b| b == b':') {
        let colon = from + off;
        from = colon + 1;
        let before = trim_end_spaces(&bytes[colon.saturating_sub(24)..colon]);
        let after = trim_start_spaces(&bytes[colon + 1..]);
        let ends = |k: &[u8]| before.len() >= k.len() && before[before.len() - k.len()..].eq_ignore_ascii_case(k);
        let starts = |k: &[u8]| after.len() >= k.len() && after[..k.len()].eq_ignore_ascii_case(k);
        let zero_size = starts(b"0") && !after.get(1).is_some_and(|b| b.is_ascii_digit() || *b == b'.');
        if (ends(b"display") && starts(b"none"))
            || (ends(b"visibility") && starts(b"hidden"))
            || (ends(b"font-size") && zero_size)
        {
            return true;
        }
    }
    false
}

fn trim_end_spaces(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |p| p + 1);
    &s[..end]
}

fn trim_start_spaces(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_vocabulary_money_and_capitals() {
        let mut s = BodyStats::default();
        s.scan("CHEAP Viagra for $5, €3 or £2! Cheap again: 100% risk-free. Ünïcode cheap");
        assert_eq!(s.spam_words, vec!["cheap", "viagra", "100%", "risk-free"]);
        assert_eq!(s.money_signs, 3);
        assert_eq!(s.words, 13);
        assert_eq!(s.capitals, 7);
    }

    #[test]
    fn vocabulary_caps_at_five_and_skips_long_words() {
        let mut s = BodyStats::default();
        s.scan("viagra cialis casino lottery bonus winner unsubscribeeeeeeeeeeeeeeeeeee");
        assert_eq!(s.spam_words.len(), 5);
        assert!(!s.spam_words.contains(&"winner"));
        assert!(SPAM_WORDS.iter().all(|w| spam_word(w.as_bytes()) == Some(*w)));
    }

    #[test]
    fn hidden_text_detection() {
        assert!(hides_text("<div style=\"DISPLAY : None\">x</div>"));
        assert!(hides_text("<span style='font-size:0px'>x</span>"));
        assert!(hides_text("<p style=\"visibility:hidden\">"));
        assert!(!hides_text("<p style=\"font-size:10px;display:block\"><a href=\"http://x.test\">"));
        assert!(!hides_text("<p style=\"font-size: 0.9em\">"));
    }
}
