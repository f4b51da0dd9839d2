//! Link extraction from text and HTML bodies.
//!
//! Hand-written on purpose: policies need only each link's target and the
//! visible text of its anchor, and a full HTML parser would cost more than
//! the rest of the pipeline per message. The scanner is linear in the input
//! and bounded by `max` links.

use crate::runtime::types::Link;

/// Links in the text body and HTML anchors, deduplicated by URL (an anchor's
/// text is kept when the same URL also appears bare), at most `max`.
pub fn extract_links(text: &str, html: &str, max: usize) -> Vec<Link> {
    let mut links: Vec<Link> = Vec::new();
    let mut add = |url: String, text: Option<String>| {
        if let Some(existing) = links.iter_mut().find(|l| l.url == url) {
            if existing.text.is_none() {
                existing.text = text;
            }
        } else if links.len() < max {
            let domain = domain_of_url(&url);
            links.push(Link { url, domain, text });
        }
    };
    for (href, anchor_text) in html_anchors(html) {
        add(href, anchor_text);
    }
    for url in bare_urls(text) {
        add(url, None);
    }
    links
}

/// Host of a URL, lower case, without user info or port.
pub fn domain_of_url(url: &str) -> String {
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => match url.strip_prefix("mailto:") {
            Some(addr) => return addr.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default(),
            None => url,
        },
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// `http(s)://…` and `www.…` URLs in plain text.
fn bare_urls(text: &str) -> impl Iterator<Item = String> + '_ {
    let lower = text.to_ascii_lowercase();
    let mut starts = Vec::new();
    for pat in ["http://", "https://", "www."] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(pat) {
            let at = from + i;
            // `www.` inside an http URL was already found by its scheme.
            let preceded_by_scheme = pat == "www." && lower[..at].ends_with("//");
            let word_start = at == 0 || !lower.as_bytes()[at - 1].is_ascii_alphanumeric();
            if !preceded_by_scheme && word_start {
                starts.push(at);
            }
            from = at + pat.len();
        }
    }
    starts.sort_unstable();
    starts.into_iter().filter_map(move |at| {
        let end = text[at..]
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '(' | ')' | '[' | ']' | '{' | '}')
            })
            .map_or(text.len(), |e| at + e);
        let url = text[at..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
        if url.len() <= 4 || url.len() > 2048 {
            return None;
        }
        Some(if url.to_ascii_lowercase().starts_with("www.") { format!("http://{url}") } else { url.to_string() })
    })
}

/// `(href, visible text)` of each `<a href=…>` in an HTML body.
fn html_anchors(html: &str) -> Vec<(String, Option<String>)> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find("<a") {
        let tag_start = from + i;
        from = tag_start + 2;
        if !lower[from..].starts_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        let Some(tag_len) = lower[tag_start..].find('>') else { break };
        let tag_end = tag_start + tag_len;
        let Some(href) = attribute(&html[tag_start..tag_end], &lower[tag_start..tag_end], "href") else { continue };
        let close = lower[tag_end..].find("</a").map_or(lower.len(), |c| tag_end + c);
        let inner = &html[tag_end + 1..close.max(tag_end + 1)];
        let text = mail_parser::decoders::html::html_to_text(inner);
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let href = href.trim();
        if href.starts_with("http://")
            || href.starts_with("https://")
            || href.starts_with("HTTP")
            || href.starts_with("mailto:")
        {
            out.push((href.to_string(), (!text.is_empty()).then_some(text)));
        }
        from = close;
    }
    out
}

/// Value of `name=` in a tag (quoted or not). `lower` is `tag` lower-cased.
fn attribute<'t>(tag: &'t str, lower: &str, name: &str) -> Option<&'t str> {
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at > 0 && lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = lower[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - rest.len() + 1;
        let value = tag[value_start..].trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split(|c: char| c.is_whitespace() || c == '>').next().unwrap_or(""),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bare_urls_and_trims_punctuation() {
        let links = extract_links("Go to https://a.test/x, or www.b.test. Not mailto here.", "", 10);
        let urls: Vec<_> = links.iter().map(|l| (l.url.as_str(), l.domain.as_str())).collect();
        assert_eq!(urls, vec![("https://a.test/x", "a.test"), ("http://www.b.test", "www.b.test")]);
    }

    #[test]
    fn anchors_keep_their_visible_text() {
        let html =
            r#"<A class=x HREF='http://10.1.2.3:8080/login'>Sign in to <b>www.bank.test</b></a> <a name=top>x</a>"#;
        let links = extract_links("", html, 10);
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].domain, "10.1.2.3");
        assert_eq!(links[0].text.as_deref(), Some("Sign in to www.bank.test"));
    }

    #[test]
    fn dedupes_and_caps() {
        let text = "http://a.test http://a.test http://b.test http://c.test";
        assert_eq!(extract_links(text, "", 2).len(), 2);
        assert_eq!(extract_links(text, "", 10).len(), 3);
    }

    #[test]
    fn domains_drop_userinfo_and_port() {
        assert_eq!(domain_of_url("https://user:pw@Example.TEST:8443/p?q"), "example.test");
        assert_eq!(domain_of_url("http://[::1]:80/"), "[::1]");
        assert_eq!(domain_of_url("mailto:someone@Lists.Test"), "lists.test");
    }
}
