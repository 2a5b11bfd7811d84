//! A plugin upload as the application checks it: the fields an upload
//! names (from a query string or a multipart form, read by the HTTP layer)
//! and the checked [`Upload`] the registry stores.

use pop_core::PluginKind;

use crate::error::{AppError, AppResult};

/// Largest accepted plugin binary.
pub const MAX_PLUGIN_BYTES: usize = 32 * 1024 * 1024;

/// What an upload says about the plugin, before validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UploadForm {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub customer_id: Option<String>,
    pub is_global: bool,
    pub activate: bool,
    pub wasm: Vec<u8>,
}

/// A checked upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub kind: PluginKind,
    pub name: String,
    pub version: String,
    pub customer_id: Option<String>,
    pub is_global: bool,
    pub activate: bool,
    pub wasm: Vec<u8>,
}

impl UploadForm {
    pub fn set(&mut self, field: &str, value: String) -> AppResult<()> {
        match field {
            "kind" => self.kind = Some(value),
            "name" => self.name = Some(value),
            "version" => self.version = Some(value),
            "customerId" => self.customer_id = Some(value),
            "isGlobal" => self.is_global = parse_flag(field, &value)?,
            "activate" => self.activate = parse_flag(field, &value)?,
            _ => {}
        }
        Ok(())
    }

    /// Check every field and name the first one that is wrong.
    pub fn check(self) -> AppResult<Upload> {
        let kind_text = self.kind.ok_or_else(|| missing("kind"))?;
        let kind = PluginKind::from_world(&kind_text).ok_or_else(|| {
            AppError::Validation(format!(
                "kind '{kind_text}' is not one of scheduler, insight-matcher, visibility-policy, handler"
            ))
        })?;
        let name = self.name.ok_or_else(|| missing("name"))?;
        check_token("name", &name, 64)?;
        let version = self.version.ok_or_else(|| missing("version"))?;
        check_token("version", &version, 32)?;
        if self.wasm.is_empty() {
            return Err(AppError::Validation("The upload carries no component bytes.".into()));
        }
        Ok(Upload {
            kind,
            name,
            version,
            customer_id: self.customer_id.filter(|c| !c.trim().is_empty()),
            is_global: self.is_global,
            activate: self.activate,
            wasm: self.wasm,
        })
    }
}

fn missing(field: &str) -> AppError {
    AppError::Validation(format!("The {field} field of the plugin must be specified."))
}

fn parse_flag(field: &str, value: &str) -> AppResult<bool> {
    match value.trim() {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(AppError::Validation(format!(
            "{field} must be true or false, not '{other}'"
        ))),
    }
}

/// Names and versions become parts of ids and paths: keep them plain.
fn check_token(field: &str, value: &str, max: usize) -> AppResult<()> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+');
    if value.is_empty() || value.len() > max || !value.chars().all(plain) {
        return Err(AppError::Validation(format!(
            "The plugin {field} '{value}' must be 1 to {max} characters of letters, digits, '.', '_', '-' or '+'."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(kind: &str, name: &str, version: &str) -> UploadForm {
        UploadForm {
            kind: Some(kind.into()),
            name: Some(name.into()),
            version: Some(version.into()),
            wasm: vec![0, 97, 115, 109],
            ..Default::default()
        }
    }

    #[test]
    fn checks_name_fields() {
        assert!(form("scheduler", "fair-share", "1.0.0+build.2").check().is_ok());
        let cases = [
            (form("schedular", "a", "1"), "kind 'schedular'"),
            (form("scheduler", "a/b", "1"), "name 'a/b'"),
            (form("scheduler", "a", ""), "version ''"),
            (
                UploadForm {
                    wasm: vec![],
                    ..form("handler", "a", "1")
                },
                "no component bytes",
            ),
            (
                UploadForm {
                    name: None,
                    ..form("handler", "a", "1")
                },
                "name field",
            ),
        ];
        for (form, expected) in cases {
            let err = form.check().unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
        assert!(parse_flag("activate", "maybe").is_err());
    }
}
