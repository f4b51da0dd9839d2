//! `headers_missing` and `headers_unacceptable`: From and To must be present
//! and hold acceptable addresses.

use super::CheckOutcome;
use crate::message::ParsedMessage;
use crate::runtime::types::Address;
use crate::verdict::{Code, Params};

/// From + To present (`headers_missing`), then both acceptable
/// (`headers_unacceptable`).
pub fn check_headers(msg: &ParsedMessage) -> CheckOutcome {
    let has = |name: &str| msg.headers.iter().any(|h| h.name.eq_ignore_ascii_case(name) && !h.value.trim().is_empty());
    if !has("From") || !has("To") {
        return CheckOutcome::Fail(Code::HeadersMissing, Params::default());
    }
    let acceptable = |list: &[Address]| !list.is_empty() && list.iter().all(|a| is_acceptable_address(&a.address));
    // From names exactly the sender; To must name at least one mailbox, and
    // every one it names must be well formed.
    if msg.from.len() != 1 || !acceptable(&msg.from) || !acceptable(&msg.to) {
        return CheckOutcome::Fail(Code::HeadersUnacceptable, Params::default());
    }
    CheckOutcome::Pass
}

/// `local@domain` with a dot-atom-ish local part (quoted local parts are not
/// accepted: no modern sender needs them) and a domain of at least two valid
/// labels (an IDN's labels may hold any alphanumeric character).
pub fn is_acceptable_address(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else { return false };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.trim_end_matches('.').split('.').collect();
    let domain_ok = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ParseLimits, ParsedMessage};

    fn check(raw: &str) -> CheckOutcome {
        check_headers(&ParsedMessage::parse(raw.as_bytes(), &ParseLimits::default()).unwrap())
    }

    fn code(o: CheckOutcome) -> Option<Code> {
        match o {
            CheckOutcome::Fail(c, _) => Some(c),
            _ => None,
        }
    }

    #[test]
    fn from_and_to_are_required() {
        assert_eq!(code(check("To: a@b.test\r\nSubject: x\r\n\r\nhi")), Some(Code::HeadersMissing));
        assert_eq!(code(check("From: a@b.test\r\nSubject: x\r\n\r\nhi")), Some(Code::HeadersMissing));
        assert_eq!(code(check("From: a@b.test\r\nTo: c@d.test\r\n\r\nhi")), None);
    }

    #[test]
    fn addresses_must_be_acceptable() {
        assert_eq!(code(check("From: not an address\r\nTo: c@d.test\r\n\r\nhi")), Some(Code::HeadersUnacceptable));
        assert_eq!(code(check("From: a@localhost\r\nTo: c@d.test\r\n\r\nhi")), Some(Code::HeadersUnacceptable));
        assert_eq!(
            code(check("From: a@b.test\r\nTo: undisclosed-recipients:;\r\n\r\nhi")),
            Some(Code::HeadersUnacceptable)
        );
        assert_eq!(code(check("From: a@b.test, x@y.test\r\nTo: c@d.test\r\n\r\nhi")), Some(Code::HeadersUnacceptable));
    }

    #[test]
    fn address_syntax() {
        assert!(is_acceptable_address("first.last+tag@sub.example.co.uk"));
        assert!(is_acceptable_address("josé@exämple.test"));
        assert!(!is_acceptable_address("a..b@x.test"));
        assert!(!is_acceptable_address("@x.test"));
        assert!(!is_acceptable_address("a@-x.test"));
        assert!(!is_acceptable_address("a b@x.test"));
    }
}
