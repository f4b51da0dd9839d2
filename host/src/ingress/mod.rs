//! Ways messages come in: the SMTP and LMTP listeners (`smtp`, one
//! `session` per conversation, connection `limits`, STARTTLS via `tls`) and
//! the HTTP check API (`http`), and the operators' `admin` API.

pub mod admin;
pub mod http;
pub mod limits;
pub mod session;
pub mod smtp;
pub mod tls;
