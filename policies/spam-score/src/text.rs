//! Small text helpers shared by the rules.

/// Domain part of an address, lower case (`""` when there is none).
pub fn domain_of(address: &str) -> String {
    address.rsplit_once('@').map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase()).unwrap_or_default()
}

/// The registrable part of a host name, approximated by its last two labels
/// (three when the second-level label is a common public suffix such as
/// `co.uk`). Enough to compare "same organisation" without a suffix list.
pub fn org_domain(host: &str) -> &str {
    let host = host.trim_end_matches('.');
    // Start of the last label, then of the one before, without allocating.
    let Some(last_dot) = host.rfind('.') else { return host };
    let Some(second_dot) = host[..last_dot].rfind('.') else { return host };
    let sld = &host[second_dot + 1..last_dot];
    if matches!(sld, "co" | "com" | "net" | "org" | "ac" | "gov" | "edu") {
        return match host[..second_dot].rfind('.') {
            Some(third_dot) => &host[third_dot + 1..],
            None => host,
        };
    }
    &host[second_dot + 1..]
}

/// Words of a text: runs of letters, digits, `'`, `-` and `%`.
pub fn words(text: &str) -> impl Iterator<Item = &str> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '\'' | '-' | '%'))).filter(|w| !w.is_empty())
}

/// Share of the letters of `text` that are upper case (0 when it has fewer
/// than `min_letters` letters). ASCII is counted byte by byte; other
/// letters through their Unicode properties.
pub fn caps_ratio(text: &str, min_letters: usize) -> f64 {
    let (mut letters, mut upper) = (0usize, 0usize);
    if text.is_ascii() {
        for b in text.bytes() {
            letters += b.is_ascii_alphabetic() as usize;
            upper += b.is_ascii_uppercase() as usize;
        }
    } else {
        for c in text.chars().filter(|c| c.is_alphabetic()) {
            letters += 1;
            upper += c.is_uppercase() as usize;
        }
    }
    if letters < min_letters { 0.0 } else { upper as f64 / letters as f64 }
}

/// True when `host` is an IPv4 or bracketed IPv6 literal.
pub fn is_ip_literal(host: &str) -> bool {
    host.starts_with('[')
        || (host.split('.').count() == 4
            && host.split('.').all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit())))
}

/// First host name that appears in a link's visible text (`www.x.test`,
/// `https://x.test/…`), lower case.
pub fn domain_in_text(text: &str) -> Option<String> {
    if !text.contains('.') {
        return None;
    }
    text.split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '(' | ')'))
        .map(|w| w.trim_start_matches("https://").trim_start_matches("http://"))
        .map(|w| w.split(['/', '?', '#', ':']).next().unwrap_or(""))
        .map(|w| w.trim_end_matches(['.', ',', ';', '!']))
        .find(|w| {
            let labels: Vec<&str> = w.split('.').collect();
            labels.len() >= 2
                && labels.iter().all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()))
        })
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_domain_keeps_registrable_part() {
        assert_eq!(org_domain("mail.news.example.com"), "example.com");
        assert_eq!(org_domain("example.com"), "example.com");
        assert_eq!(org_domain("shop.example.co.uk"), "example.co.uk");
        assert_eq!(org_domain("localhost"), "localhost");
    }

    #[test]
    fn finds_domains_in_link_text() {
        assert_eq!(domain_in_text("Log in at www.PayPal.com now"), Some("www.paypal.com".into()));
        assert_eq!(domain_in_text("https://bank.test/login"), Some("bank.test".into()));
        assert_eq!(domain_in_text("click here"), None);
        assert_eq!(domain_in_text("version 1.2"), None);
    }

    #[test]
    fn ip_literals_and_caps() {
        assert!(is_ip_literal("192.168.10.1"));
        assert!(is_ip_literal("[::1]"));
        assert!(!is_ip_literal("1.2.example"));
        assert!(caps_ratio("FREE MONEY NOW", 5) > 0.99);
        assert_eq!(caps_ratio("OK", 5), 0.0);
        assert_eq!(domain_of("Bob <bob@Example.COM>"), "example.com");
    }
}
