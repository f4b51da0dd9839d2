use super::*;
use postern_policy_sdk::{Address, Attachment, DkimSignature, Dmarc, Header, Link, MessageData, Spf};

fn names(hits: &Hits) -> Vec<&'static str> {
    hits.iter().map(|h| h.rule.name).collect()
}

fn addr(a: &str) -> Address {
    Address { name: None, address: a.into() }
}

#[test]
fn authentication_pass_lowers_and_failure_raises() {
    let mut hits = Hits::new();
    let good = Authentication {
        spf_mail_from: Spf { domain: "a.test".into(), result: AuthResult::Pass },
        dkim: vec![DkimSignature { domain: "a.test".into(), selector: "s".into(), result: AuthResult::Pass }],
        dmarc: Dmarc { result: AuthResult::Pass, dkim_aligned: true, ..Default::default() },
        ..Default::default()
    };
    authentication(&good, &mut hits);
    assert_eq!(names(&hits), vec!["SPF_PASS", "DKIM_VALID_ALIGNED"]);

    let mut hits = Hits::new();
    let bad = Authentication {
        spf_mail_from: Spf { domain: "a.test".into(), result: AuthResult::Fail },
        dmarc: Dmarc { result: AuthResult::Fail, ..Default::default() },
        ..Default::default()
    };
    authentication(&bad, &mut hits);
    assert_eq!(names(&hits), vec!["SPF_FAIL", "DMARC_FAIL", "NO_AUTH"]);
}

#[test]
fn unchecked_authentication_is_not_a_failure() {
    let mut hits = Hits::new();
    authentication(&Authentication::default(), &mut hits);
    assert!(hits.is_empty());
}

#[test]
fn header_mismatches() {
    let msg = Message::new(MessageData {
        from: vec![Address { name: Some("support@bank.test".into()), address: "x@evil.test".into() }],
        reply_to: vec![addr("collect@other.test")],
        message_id: Some("id@evil.test".into()),
        headers: vec![Header { name: "Date".into(), value: "Mon, 1 Jan 2024 00:00:00 +0000".into() }],
        ..Default::default()
    });
    let env = Envelope { mail_from: "bounce@mailer.evil.test".into(), ..Default::default() };
    let mut hits = Hits::new();
    headers(&msg, &env, &mut hits);
    assert_eq!(names(&hits), vec!["FROM_NAME_HAS_ADDRESS", "REPLYTO_DIFFERS"]);
}

#[test]
fn subject_rules() {
    let mut hits = Hits::new();
    subject(
        &Message::new(MessageData { subject: Some("WIN FREE CASH NOW!!".into()), ..Default::default() }),
        &mut hits,
    );
    assert_eq!(names(&hits), vec!["SUBJ_ALL_CAPS", "SUBJ_EXCLAIM", "SUBJ_MONEY"]);
    let mut hits = Hits::new();
    subject(
        &Message::new(MessageData { subject: Some("Question about my invoice".into()), ..Default::default() }),
        &mut hits,
    );
    assert!(hits.is_empty());
}

#[test]
fn body_vocabulary_scales_with_distinct_words() {
    let msg = Message::new(MessageData {
        text_body: "Cheap viagra! cheap VIAGRA, discount pharmacy. Unsubscribe here.".into(),
        ..Default::default()
    });
    let mut stats = crate::scan::BodyStats::default();
    stats.scan(msg.primary_text());
    let mut hits = Hits::new();
    body(&msg, &stats, &mut hits);
    let words = hits.iter().find(|h| h.rule.name == "BODY_SPAM_WORDS").expect("fires");
    assert_eq!(words.times, 5.0);
    assert_eq!(words.detail, "cheap, viagra, discount, pharmacy, unsubscribe");
}

#[test]
fn deceptive_links() {
    let link = |url: &str, domain: &str, text: Option<&str>| Link {
        url: url.into(),
        domain: domain.into(),
        text: text.map(Into::into),
    };
    let msg = Message::new(MessageData {
        links: vec![
            link("http://bit.ly/x", "bit.ly", None),
            link("http://10.0.0.1/login", "10.0.0.1", Some("www.mybank.test")),
            link("https://docs.example.test/a", "docs.example.test", Some("example.test")),
        ],
        ..Default::default()
    });
    let mut hits = Hits::new();
    links(&msg, &mut hits);
    assert_eq!(names(&hits), vec!["URL_SHORTENER", "URL_IP_LITERAL", "URL_TEXT_MISMATCH"]);
}

#[test]
fn executable_attachments() {
    let att = |name: &str| Attachment {
        filename: Some(name.into()),
        content_type: "application/octet-stream".into(),
        size: 10,
        inline: false,
    };
    let mut hits = Hits::new();
    attachments(
        &Message::new(MessageData { attachments: vec![att("invoice.pdf.exe")], ..Default::default() }),
        &mut hits,
    );
    assert_eq!(names(&hits), vec!["ATTACH_EXECUTABLE", "ATTACH_DOUBLE_EXT"]);
    let mut hits = Hits::new();
    attachments(&Message::new(MessageData { attachments: vec![att("report.pdf")], ..Default::default() }), &mut hits);
    assert!(hits.is_empty());
}
