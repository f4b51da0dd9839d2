//! Sender authentication through DNS: MX of the From domain, SPF (MAIL FROM
//! and HELO), every DKIM signature, DMARC. A DNS time-out or SERVFAIL is a
//! temporary failure, never a rejection.

use std::net::IpAddr;

use mail_auth::dmarc::Policy;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimOutput, DkimResult, DmarcResult, SpfOutput, SpfResult};

use crate::dns::Dns;
use crate::runtime::types::{self, AuthResult, Authentication, DkimSignature, Dmarc, DmarcPolicy, Spf};

/// Outcome of the MX lookup for the From domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxOutcome {
    /// At least one usable MX.
    Found,
    /// No MX (NXDOMAIN, no MX records, or a null MX).
    None,
    /// DNS failed for now.
    TempFail(String),
}

/// Looks up the MX records of `domain`.
pub async fn check_mx(dns: &Dns, domain: &str) -> MxOutcome {
    let lookup = dns.authenticator.mx_lookup(domain, Some(&dns.caches.mx));
    match tokio::time::timeout(dns.timeout, lookup).await {
        Err(_) => MxOutcome::TempFail(format!("MX lookup for {domain} timed out")),
        Ok(Ok(set)) => {
            let usable = set.rrset.iter().any(|mx| mx.exchanges.iter().any(|e| !e.trim_end_matches('.').is_empty()));
            if usable { MxOutcome::Found } else { MxOutcome::None }
        }
        Ok(Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(code)))) => {
            use mail_auth::hickory_resolver::proto::op::ResponseCode;
            if matches!(code, ResponseCode::NXDomain | ResponseCode::NoError) {
                MxOutcome::None
            } else {
                MxOutcome::TempFail(format!("MX lookup for {domain}: {code}"))
            }
        }
        Ok(Err(mail_auth::Error::Dns(mail_auth::DnsError::InvalidRecordType))) => MxOutcome::None,
        Ok(Err(e)) => MxOutcome::TempFail(format!("MX lookup for {domain}: {e}")),
    }
}

/// SPF, DKIM and DMARC results, as policies see them, plus what the checks
/// need to decide.
#[derive(Debug, Clone)]
pub struct AuthReport {
    /// For policies.
    pub auth: Authentication,
    /// SPF passed for MAIL FROM (or for HELO when the sender is null).
    pub spf_pass: bool,
    /// At least one DKIM signature passed.
    pub dkim_pass: bool,
    /// A lookup failed for now (SPF or DKIM).
    pub temp_error: Option<String>,
    /// DMARC failed with this published policy (quarantine or reject).
    pub dmarc_reject: Option<&'static str>,
    /// DMARC could not be evaluated for now.
    pub dmarc_temp_error: bool,
}

/// Runs SPF (HELO and MAIL FROM), DKIM (every signature) and, when
/// `with_dmarc`, DMARC. The whole takes at most the DNS budget per step.
pub async fn authenticate(
    dns: &Dns,
    raw: &[u8],
    client_ip: IpAddr,
    helo: &str,
    mail_from: &str,
    with_dmarc: bool,
) -> AuthReport {
    let c = &dns.caches;
    let host = "localhost";
    let timeout = dns.timeout;
    let temp = |what: &str| SpfOutput::new(what.to_string()).with_result(SpfResult::TempError);

    let helo_spf = match tokio::time::timeout(
        timeout,
        dns.authenticator.verify_spf(c.with(SpfParameters::verify_ehlo(client_ip, helo, host))),
    )
    .await
    {
        Ok(out) => out,
        Err(_) => temp(helo),
    };
    let mail_from_spf = if mail_from.is_empty() {
        helo_spf.clone()
    } else {
        match tokio::time::timeout(
            timeout,
            dns.authenticator.verify_spf(c.with(SpfParameters::verify_mail_from(client_ip, helo, host, mail_from))),
        )
        .await
        {
            Ok(out) => out,
            Err(_) => temp(mail_from.rsplit_once('@').map_or(mail_from, |(_, d)| d)),
        }
    };

    let message = AuthenticatedMessage::parse(raw);
    let dkim: Vec<DkimOutput<'_>> = match &message {
        Some(m) => tokio::time::timeout(timeout, dns.authenticator.verify_dkim(c.with(m))).await.unwrap_or_default(),
        None => Vec::new(),
    };
    let dkim_timed_out = message.as_ref().is_some_and(|m| !m.dkim_headers.is_empty()) && dkim.is_empty();

    let spf_pass = mail_from_spf.result() == SpfResult::Pass;
    let dkim_pass = dkim.iter().any(|d| *d.result() == DkimResult::Pass);
    let mut temp_error = None;
    if matches!(mail_from_spf.result(), SpfResult::TempError) {
        temp_error = Some(format!("SPF for {}: temporary DNS failure", mail_from_spf.domain()));
    }
    if dkim_timed_out || dkim.iter().any(|d| matches!(d.result(), DkimResult::TempError(_))) {
        temp_error = Some("DKIM: temporary DNS failure".into());
    }

    let mut report_dmarc = Dmarc {
        result: AuthResult::NotChecked,
        policy: DmarcPolicy::Unspecified,
        spf_aligned: false,
        dkim_aligned: false,
    };
    let (mut dmarc_reject, mut dmarc_temp_error) = (None, false);
    if with_dmarc && let Some(m) = &message {
        let domain = if mail_from.is_empty() { helo } else { mail_from.rsplit_once('@').map_or(helo, |(_, d)| d) };
        let params = mail_auth::dmarc::verify::DmarcParameters::new(m, &dkim, domain, &mail_from_spf);
        let out = tokio::time::timeout(timeout, dns.authenticator.verify_dmarc(c.with(params))).await;
        match out {
            Err(_) => {
                dmarc_temp_error = true;
                report_dmarc.result = AuthResult::Temperror;
            }
            Ok(out) => {
                let result = out.result();
                report_dmarc = Dmarc {
                    result: dmarc_result(&result),
                    policy: match out.policy() {
                        Policy::None => DmarcPolicy::None,
                        Policy::Quarantine => DmarcPolicy::Quarantine,
                        Policy::Reject => DmarcPolicy::Reject,
                        Policy::Unspecified => DmarcPolicy::Unspecified,
                    },
                    spf_aligned: *out.spf_result() == DmarcResult::Pass,
                    dkim_aligned: *out.dkim_result() == DmarcResult::Pass,
                };
                match (&result, out.policy()) {
                    (DmarcResult::TempError(_), _) => dmarc_temp_error = true,
                    (DmarcResult::Fail(_), Policy::Quarantine) => dmarc_reject = Some("quarantine"),
                    (DmarcResult::Fail(_), Policy::Reject) => dmarc_reject = Some("reject"),
                    _ => {}
                }
            }
        }
    }

    let auth = Authentication {
        spf_mail_from: spf(&mail_from_spf),
        spf_helo: spf(&helo_spf),
        dkim: dkim
            .iter()
            .map(|d| DkimSignature {
                domain: d.signature().map(|s| s.d.clone()).unwrap_or_default(),
                selector: d.signature().map(|s| s.s.clone()).unwrap_or_default(),
                result: dkim_result(d.result()),
            })
            .collect(),
        dmarc: report_dmarc,
    };
    AuthReport { auth, spf_pass, dkim_pass, temp_error, dmarc_reject, dmarc_temp_error }
}

fn spf(out: &SpfOutput) -> Spf {
    Spf {
        domain: out.domain().to_string(),
        result: match out.result() {
            SpfResult::Pass => AuthResult::Pass,
            SpfResult::Fail => AuthResult::Fail,
            SpfResult::SoftFail => AuthResult::Softfail,
            SpfResult::Neutral => AuthResult::Neutral,
            SpfResult::TempError => AuthResult::Temperror,
            SpfResult::PermError => AuthResult::Permerror,
            SpfResult::None => AuthResult::None,
        },
    }
}

fn dkim_result(r: &DkimResult) -> AuthResult {
    match r {
        DkimResult::Pass => AuthResult::Pass,
        DkimResult::Neutral(_) => AuthResult::Neutral,
        DkimResult::Fail(_) => AuthResult::Fail,
        DkimResult::PermError(_) => AuthResult::Permerror,
        DkimResult::TempError(_) => AuthResult::Temperror,
        DkimResult::None => AuthResult::None,
    }
}

fn dmarc_result(r: &DmarcResult) -> AuthResult {
    match r {
        DmarcResult::Pass => AuthResult::Pass,
        DmarcResult::Fail(_) => AuthResult::Fail,
        DmarcResult::TempError(_) => AuthResult::Temperror,
        DmarcResult::PermError(_) => AuthResult::Permerror,
        DmarcResult::None => AuthResult::None,
    }
}

/// Authentication as policies see it when the checks did not run.
pub fn not_checked() -> Authentication {
    let spf = Spf { domain: String::new(), result: AuthResult::NotChecked };
    Authentication {
        spf_mail_from: spf.clone(),
        spf_helo: spf,
        dkim: vec![],
        dmarc: types::Dmarc {
            result: AuthResult::NotChecked,
            policy: DmarcPolicy::Unspecified,
            spf_aligned: false,
            dkim_aligned: false,
        },
    }
}
