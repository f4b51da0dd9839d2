//! Recipient resolution (RCPT time): a recipient on a custom domain bound to
//! a workspace is new mail for it; a recipient on the reply domain is a reply
//! whose local part is `<workspace-id>+<session-id>`.

use std::sync::Arc;

use crate::directory::{Directory, WorkspaceRecord, is_valid_id};
use crate::runtime::types::MailKind;
use crate::verdict::{Code, Params};

/// A recipient resolved to its workspace.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The workspace.
    pub workspace: Arc<WorkspaceRecord>,
    /// New mail, or a reply to a session.
    pub kind: MailKind,
}

/// Resolves `rcpt` against the directory, or names the catalog code that
/// refuses it. `reply_domain` is the conversations' reply domain, if any.
// The refusal is returned once per recipient; its size does not matter.
#[allow(clippy::result_large_err)]
pub fn resolve(rcpt: &str, reply_domain: Option<&str>, dir: &dyn Directory) -> Result<Resolved, (Code, Params)> {
    let rcpt = rcpt.trim().trim_start_matches('<').trim_end_matches('>');
    let Some((local, domain)) = rcpt.rsplit_once('@') else {
        return Err((Code::DomainUnbound, Params::default()));
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if reply_domain.is_some_and(|r| r == domain) {
        return resolve_reply(rcpt, local, dir);
    }
    let workspace = dir.workspace_for_domain(&domain).ok_or((Code::DomainUnbound, Params::default()))?;
    if !workspace.subscription_active {
        return Err((Code::DomainUnbound, Params::default()));
    }
    if !workspace.email_redirect {
        return Err((Code::PluginDisabled, Params::default()));
    }
    if workspace.blocked {
        return Err((Code::WorkspaceBlocked, Params::default()));
    }
    Ok(Resolved { workspace, kind: MailKind::NewMail })
}

#[allow(clippy::result_large_err)]
fn resolve_reply(rcpt: &str, local: &str, dir: &dyn Directory) -> Result<Resolved, (Code, Params)> {
    let local = local.to_ascii_lowercase();
    let invalid = || (Code::SessionAddressInvalid, Params { email: rcpt.to_string(), ..Params::default() });
    let (ws_id, session_id) = local.split_once('+').ok_or_else(invalid)?;
    if !is_valid_id(ws_id) || !is_valid_id(session_id) {
        return Err(invalid());
    }
    let Some(workspace) = dir.workspace(ws_id) else {
        let params = Params { website: ws_id.to_string(), session: session_id.to_string(), ..Params::default() };
        return Err((Code::WorkspaceMissing, params));
    };
    match dir.session(session_id) {
        Some(s) if s.workspace == workspace.id => {}
        _ => return Err((Code::SessionMissing, Params::default())),
    }
    if workspace.blocked {
        return Err((Code::WorkspaceBlocked, Params::default()));
    }
    Ok(Resolved { workspace, kind: MailKind::Reply(session_id.to_string()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Snapshot;

    fn dir() -> Snapshot {
        Snapshot::parse(
            r#"
[[workspace]]
id = "acme"
domains = ["support.acme.test"]
[[workspace]]
id = "lapsed"
domains = ["lapsed.test"]
subscription_active = false
[[workspace]]
id = "noplugin"
domains = ["noplugin.test"]
email_redirect = false
[[workspace]]
id = "banned"
domains = ["banned.test"]
blocked = true
[[session]]
id = "s-1"
workspace = "acme"
[[session]]
id = "s-b"
workspace = "banned"
[[session]]
id = "s-orphan"
workspace = "gone"
"#,
        )
        .unwrap()
    }

    fn code(r: Result<Resolved, (Code, Params)>) -> Code {
        r.map(|_| panic!("expected a refusal")).unwrap_err().0
    }

    #[test]
    fn new_mail_checks_binding_subscription_plugin_and_moderation_in_order() {
        let d = dir();
        let ok = resolve("Help@Support.ACME.test", Some("reply.test"), &d).unwrap();
        assert_eq!((ok.workspace.id.as_str(), ok.kind), ("acme", MailKind::NewMail));
        assert_eq!(code(resolve("x@unbound.test", Some("reply.test"), &d)), Code::DomainUnbound);
        assert_eq!(code(resolve("x@lapsed.test", Some("reply.test"), &d)), Code::DomainUnbound);
        assert_eq!(code(resolve("x@noplugin.test", Some("reply.test"), &d)), Code::PluginDisabled);
        assert_eq!(code(resolve("x@banned.test", Some("reply.test"), &d)), Code::WorkspaceBlocked);
    }

    #[test]
    fn replies_resolve_to_their_session() {
        let d = dir();
        let ok = resolve("<acme+s-1@Reply.Test>", Some("reply.test"), &d).unwrap();
        assert_eq!(ok.kind, MailKind::Reply("s-1".into()));
        let (c, p) = resolve("acme@reply.test", Some("reply.test"), &d).unwrap_err();
        assert_eq!((c, p.email.as_str()), (Code::SessionAddressInvalid, "acme@reply.test"));
        assert_eq!(code(resolve("acme+s 1@reply.test", Some("reply.test"), &d)), Code::SessionAddressInvalid);
        assert_eq!(code(resolve("acme+@reply.test", Some("reply.test"), &d)), Code::SessionAddressInvalid);
        assert_eq!(code(resolve("acme+s-404@reply.test", Some("reply.test"), &d)), Code::SessionMissing);
        assert_eq!(code(resolve("acme+s-b@reply.test", Some("reply.test"), &d)), Code::SessionMissing);
        let (c, p) = resolve("gone+s-orphan@reply.test", Some("reply.test"), &d).unwrap_err();
        assert_eq!((c, p.website.as_str(), p.session.as_str()), (Code::WorkspaceMissing, "gone", "s-orphan"));
        assert_eq!(code(resolve("banned+s-b@reply.test", Some("reply.test"), &d)), Code::WorkspaceBlocked);
    }
}
