//! `Default` values of the contract's types, so native tests state only what
//! matters to them. Authentication defaults to "not checked", never to a
//! failure.
//!
//! The types are generated from the WIT, so these cannot be derived.
#![allow(clippy::derivable_impls)]

use crate::{AuthResult, Authentication, Dmarc, DmarcPolicy, Envelope, MailKind, Priority, Spf, Workspace};

impl Default for AuthResult {
    fn default() -> Self {
        AuthResult::NotChecked
    }
}

impl Default for Spf {
    fn default() -> Self {
        Spf { domain: String::new(), result: AuthResult::NotChecked }
    }
}

impl Default for Dmarc {
    fn default() -> Self {
        Dmarc {
            result: AuthResult::NotChecked,
            policy: DmarcPolicy::Unspecified,
            spf_aligned: false,
            dkim_aligned: false,
        }
    }
}

impl Default for Authentication {
    fn default() -> Self {
        Authentication {
            spf_mail_from: Spf::default(),
            spf_helo: Spf::default(),
            dkim: Vec::new(),
            dmarc: Dmarc::default(),
        }
    }
}

impl Default for Envelope {
    fn default() -> Self {
        Envelope {
            client_ip: "127.0.0.1".into(),
            helo: "localhost".into(),
            mail_from: String::new(),
            rcpt_to: Vec::new(),
        }
    }
}

impl Default for Workspace {
    fn default() -> Self {
        Workspace { id: "default".into(), junk_filter: true, kind: MailKind::NewMail, settings: Vec::new() }
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::Normal
    }
}
