//! `inspect KEY`: one entry's envelope, decoded, and whether the runtime
//! would use it.

use std::time::Duration;

use cached_redis_core::Config;
use cached_redis_core::admin::redis::{self, Value};
use cached_redis_core::admin::{Admin, AdminError, Checksum, Entry, Signature};
use cached_redis_core::advanced::envelope::HEADER_LEN;
use serde::Serialize;

use crate::error::CliError;
use crate::output::{self, Report};

pub fn run(admin: &Admin, config: &Config, key: &str, json: bool) -> Result<Report, CliError> {
    let (bytes, expiry) = fetch(admin, key)?;
    let entry = Entry::read(&bytes, config).map_err(|reason| CliError::NotAnEntry {
        key: key.to_owned(),
        size: bytes.len(),
        reason,
    })?;
    let view = View::new(key, &entry, expiry, output::now_ms());
    let text = if json {
        output::json(&view)?
    } else {
        view.text(&entry)
    };
    let finding = (!view.problems.is_empty()).then(|| {
        format!(
            "{key}: the runtime would refuse this entry: {}",
            view.problems.join("; ")
        )
    });
    Ok(Report { text, finding })
}

/// The key's bytes and its remaining time in Redis (`None`: no expiry).
fn fetch(admin: &Admin, key: &str) -> Result<(Vec<u8>, Option<Duration>), CliError> {
    let bytes = match admin.query(redis::cmd("GET").arg(key)).wait() {
        Ok(Value::BulkString(bytes)) => bytes,
        Ok(Value::Nil) => return Err(CliError::NoSuchKey(key.to_owned())),
        Ok(_) => return Err(AdminError::UnexpectedReply("GET").into()),
        Err(err) if err.code() == Some("WRONGTYPE") => {
            let kind = admin.query(redis::cmd("TYPE").arg(key)).wait()?;
            let kind = redis::from_redis_value::<String>(kind)
                .map_err(|_| AdminError::UnexpectedReply("TYPE"))?;
            return Err(CliError::WrongType {
                key: key.to_owned(),
                kind,
            });
        }
        Err(err) => return Err(err.into()),
    };
    match admin.query(redis::cmd("PTTL").arg(key)).wait()? {
        // Expired or removed between the two reads.
        Value::Int(-2) => Err(CliError::NoSuchKey(key.to_owned())),
        Value::Int(ms) if ms < 0 => Ok((bytes, None)),
        Value::Int(ms) => Ok((bytes, Some(Duration::from_millis(ms.unsigned_abs())))),
        _ => Err(AdminError::UnexpectedReply("PTTL").into()),
    }
}

/// Everything shown, in the JSON's shape; the text is laid out from it.
#[derive(Serialize)]
struct View<'a> {
    key: &'a str,
    valid: bool,
    problems: Vec<String>,
    envelope_version: u8,
    codec: u8,
    codec_name: Option<&'static str>,
    flags: u16,
    signed: bool,
    timed: bool,
    compressed: bool,
    digest: String,
    digest_matches_key: Option<bool>,
    created_at_ms: u64,
    created_at: String,
    age_ms: u64,
    ttl_ms: u64,
    fresh: bool,
    /// Redis's remaining time; `null`: the key never expires.
    expires_in_ms: Option<u64>,
    compute_ms: Option<u64>,
    size: usize,
    body_len: usize,
    uncompressed_len: Option<u32>,
    checksum: &'static str,
    hmac: &'static str,
}

impl<'a> View<'a> {
    fn new(key: &'a str, entry: &Entry, expiry: Option<Duration>, now_ms: u64) -> View<'a> {
        let problems: Vec<String> = entry
            .problems(key)
            .iter()
            .map(ToString::to_string)
            .collect();
        let ttl_ms = u64::try_from(entry.ttl.as_millis()).unwrap_or(u64::MAX);
        let age_ms = now_ms.saturating_sub(entry.created_at_ms);
        View {
            key,
            valid: problems.is_empty(),
            problems,
            envelope_version: entry.envelope_version,
            codec: entry.codec,
            codec_name: entry.codec_name(),
            flags: entry.flags,
            signed: entry.is_signed(),
            timed: entry.is_timed(),
            compressed: entry.is_compressed(),
            digest: entry.digest_hex(),
            digest_matches_key: entry.matches_key(key),
            created_at_ms: entry.created_at_ms,
            created_at: output::utc(entry.created_at_ms),
            age_ms,
            ttl_ms,
            fresh: age_ms < ttl_ms,
            expires_in_ms: expiry.map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
            compute_ms: entry
                .compute
                .map(|took| u64::try_from(took.as_millis()).unwrap_or(u64::MAX)),
            size: entry.size,
            body_len: entry.body_len,
            uncompressed_len: entry.uncompressed_len,
            checksum: match entry.checksum {
                Checksum::Valid => "ok",
                Checksum::Mismatch => "mismatch",
            },
            hmac: match entry.signature {
                Signature::Verified => "verified",
                Signature::Invalid => "invalid",
                Signature::Missing => "missing",
                Signature::NotVerified => "not_verified",
                _ => "unsigned",
            },
        }
    }

    fn text(&self, entry: &Entry) -> String {
        let ms = Duration::from_millis;
        let flags: Vec<&str> = [
            (self.signed, "signed"),
            (self.timed, "timed"),
            (self.compressed, "compressed"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        let digest = match self.digest_matches_key {
            Some(true) => format!("{} (matches the key)", self.digest),
            Some(false) => format!("{} (DOES NOT match the key)", self.digest),
            None => self.digest.clone(),
        };
        let freshness = if self.fresh {
            format!(
                "fresh for {}",
                output::duration(ms(self.ttl_ms - self.age_ms))
            )
        } else {
            format!(
                "expired {} ago: served only as a stale value",
                output::duration(ms(self.age_ms - self.ttl_ms))
            )
        };
        let mut parts = vec![format!("header {HEADER_LEN}")];
        if self.timed {
            parts.push("compute time 4".to_owned());
        }
        if self.signed {
            parts.push("HMAC 32".to_owned());
        }
        parts.push(format!("body {}", self.body_len));
        let mut size = format!("{} ({})", output::bytes(self.size as u64), parts.join(", "));
        if let Some(plain) = self.uncompressed_len {
            size.push_str(&format!(
                "; {} uncompressed",
                output::bytes(u64::from(plain))
            ));
        }
        let mut pairs = vec![
            ("key", self.key.to_owned()),
            ("envelope", format!("version {}", self.envelope_version)),
            (
                "codec",
                format!(
                    "{} ({})",
                    self.codec,
                    self.codec_name.unwrap_or("unknown to this version")
                ),
            ),
            (
                "flags",
                if flags.is_empty() {
                    "none".to_owned()
                } else {
                    flags.join(", ")
                },
            ),
            ("key digest", digest),
            (
                "created at",
                format!(
                    "{} ({} ago)",
                    self.created_at,
                    output::duration(ms(self.age_ms))
                ),
            ),
            (
                "stored TTL",
                format!("{} ({freshness})", output::duration(ms(self.ttl_ms))),
            ),
            (
                "expires in",
                match self.expires_in_ms {
                    Some(left) => format!("{} (Redis PTTL)", output::duration(ms(left))),
                    None => "never (no expiry in Redis)".to_owned(),
                },
            ),
        ];
        if let Some(took) = entry.compute {
            pairs.push(("compute", output::duration(took)));
        }
        pairs.extend([
            ("size", size),
            (
                "checksum",
                match entry.checksum {
                    Checksum::Valid => "ok".to_owned(),
                    Checksum::Mismatch => "MISMATCH (damaged bytes)".to_owned(),
                },
            ),
            ("HMAC", entry.signature.describe().to_owned()),
            (
                "verdict",
                if self.valid {
                    "valid: the runtime would use this entry".to_owned()
                } else {
                    format!("REFUSED: {}", self.problems.join("; "))
                },
            ),
        ]);
        output::fields(&pairs)
    }
}
