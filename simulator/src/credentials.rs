//! Device credentials as the service issues them: `geoward import` and
//! `geoward devices add` print, once per new device,
//!
//! ```text
//! new device b1: mqtt_password = 5f0c… payload_key_hex = 9a41… (shown once)
//! ```
//!
//! The MQTT password and the payload key are different secrets: the password
//! logs the device in, the key (hex) seals its payloads. Saved output of those
//! commands is read here (other lines are ignored), so a run can use the real
//! credentials with `--credentials FILE`.

use std::collections::HashMap;

use thiserror::Error;

/// One device's secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCredentials {
    /// MQTT password.
    pub password: String,
    /// Key that seals payloads (MAC, encryption), raw bytes.
    pub payload_key: Vec<u8>,
}

/// A credentials line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {message}")]
pub struct CredentialsError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl CredentialsError {
    /// Stable low-cardinality code.
    pub fn reason(&self) -> &'static str {
        "bad_credentials"
    }
}

/// Reads every `new device ID: mqtt_password = P payload_key_hex = K` line.
pub fn parse(text: &str) -> Result<HashMap<String, DeviceCredentials>, CredentialsError> {
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix("new device ") else {
            continue;
        };
        let bad = |message: &str| CredentialsError {
            line: i + 1,
            message: message.to_string(),
        };
        let (id, rest) = rest
            .split_once(':')
            .ok_or_else(|| bad("no ':' after the device id"))?;
        let mut words = rest.split_whitespace();
        let mut field = |name: &str| -> Result<String, CredentialsError> {
            match (words.next(), words.next(), words.next()) {
                (Some(n), Some("="), Some(v)) if n == name => Ok(v.to_string()),
                _ => Err(bad(&format!("want `{name} = VALUE`"))),
            }
        };
        let password = field("mqtt_password")?;
        let key = field("payload_key_hex")?;
        let payload_key = decode_hex(&key).ok_or_else(|| bad("payload_key_hex is not hex"))?;
        out.insert(
            id.trim().to_string(),
            DeviceCredentials {
                password,
                payload_key,
            },
        );
    }
    Ok(out)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_import_output_and_names_bad_lines() {
        let text =
            "offices: 1\nnew device b1: mqtt_password = pw1 payload_key_hex = 0a0b (shown once)\n";
        let c = parse(text).unwrap();
        assert_eq!(
            c["b1"],
            DeviceCredentials {
                password: "pw1".into(),
                payload_key: vec![10, 11]
            }
        );
        let err = parse("x\nnew device b2: mqtt_password = pw payload_key_hex = zz\n").unwrap_err();
        assert_eq!((err.line, err.reason()), (2, "bad_credentials"));
        assert!(parse("new device b3 mqtt_password").is_err());
    }
}
