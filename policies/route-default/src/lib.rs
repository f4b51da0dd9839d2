//! Default route policy: new mail opens a new conversation in the workspace's
//! inbox; a reply joins its session. Auto-generated mail (RFC 3834
//! `Auto-Submitted`, bulk `Precedence`) is tagged `automated` at low priority
//! so agents can filter it. The inbox comes from the config (`inbox`,
//! default `default`).

use postern_policy_sdk::{Conversation, MailKind, Priority, RouteDecision, RouteInput, route};

/// Routes an accepted message.
#[route]
pub fn route_message(input: &RouteInput) -> RouteDecision {
    let conversation = match &input.workspace.kind {
        MailKind::Reply(session) => Conversation::ExistingSession(session.clone()),
        MailKind::NewMail => Conversation::NewConversation,
    };
    let automated = input.message.header("Auto-Submitted").iter().any(|v| !v.trim().eq_ignore_ascii_case("no"))
        || input
            .message
            .header("Precedence")
            .iter()
            .any(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "bulk" | "list" | "junk"));
    let (tags, priority) =
        if automated { (vec!["automated".to_string()], Priority::Low) } else { (vec![], Priority::Normal) };
    RouteDecision {
        inbox: input.config.str_or("inbox", "default").to_string(),
        conversation,
        tags,
        assignee: None,
        priority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_policy_sdk::{Config, Header, Message, MessageData, Workspace};

    fn input(kind: MailKind, headers: Vec<Header>, config: &str) -> RouteInput<'static> {
        RouteInput {
            message: Message::new(MessageData { headers, ..Default::default() }),
            envelope: Default::default(),
            workspace: Workspace { kind, ..Default::default() },
            score: 0.0,
            symbols: vec![],
            config: Config::from_json(config),
        }
    }

    #[test]
    fn new_mail_opens_a_conversation_in_the_default_inbox() {
        let r = route_message(&input(MailKind::NewMail, vec![], ""));
        assert_eq!(r.conversation, Conversation::NewConversation);
        assert_eq!(r.inbox, "default");
        assert_eq!(r.priority, Priority::Normal);
        assert!(r.tags.is_empty());
    }

    #[test]
    fn reply_joins_its_session() {
        let r = route_message(&input(MailKind::Reply("s-42".into()), vec![], r#"{"inbox":"support"}"#));
        assert_eq!(r.conversation, Conversation::ExistingSession("s-42".into()));
        assert_eq!(r.inbox, "support");
    }

    #[test]
    fn automated_mail_is_tagged_low_priority() {
        let h = |n: &str, v: &str| Header { name: n.into(), value: v.into() };
        let auto = route_message(&input(MailKind::NewMail, vec![h("Auto-Submitted", "auto-replied")], ""));
        assert_eq!(auto.tags, vec!["automated".to_string()]);
        assert_eq!(auto.priority, Priority::Low);
        let not_auto = route_message(&input(MailKind::NewMail, vec![h("Auto-Submitted", "no")], ""));
        assert!(not_auto.tags.is_empty());
        let bulk = route_message(&input(MailKind::NewMail, vec![h("Precedence", "bulk")], ""));
        assert_eq!(bulk.priority, Priority::Low);
    }
}
