//! The built-in plugins, shipped as wasm inside the binary and registered at
//! start-up as global plugins of owner `pop`, visible through the same API
//! as tenants' plugins.

use pop_core::{PluginKind, PluginVersion};
use pop_ports::sha256_hex;

use super::{BUILTIN_OWNER, PluginHost};
use crate::domain::typed;
use crate::error::{AppError, AppResult};

/// The version every built-in is registered under.
pub fn builtin_version() -> String {
    format!("builtin-{}", env!("CARGO_PKG_VERSION"))
}

pub async fn register(host: &PluginHost) -> AppResult<()> {
    let version = builtin_version();
    let registry = host.registry();
    for builtin in pop_builtin_plugins::BUILTINS {
        let kind = PluginKind::from_world(builtin.kind).ok_or_else(|| {
            AppError::Internal(format!("built-in {} has unknown kind {}", builtin.name, builtin.kind))
        })?;
        let compiled = registry.compile(kind, builtin.wasm.to_vec()).await?;
        let mut record = PluginVersion {
            plugin_kind: Some(kind),
            name: Some(builtin.name.into()),
            version: Some(version.clone()),
            sha256: Some(sha256_hex(builtin.wasm)),
            size_bytes: Some(builtin.wasm.len() as i64),
            contract_version: Some(compiled.contract().version().into()),
            is_global: Some(true),
            failure_count: Some(0),
            ..Default::default()
        };
        let now = host.now_millis();
        let env = &mut record.envelope;
        env.id = Some(PluginVersion::id_for(BUILTIN_OWNER, kind, builtin.name, &version));
        env.customer_id = Some(BUILTIN_OWNER.into());
        env.title = Some(builtin.name.into());
        env.added_time = Some(now);
        env.updated_time = Some(now);
        host.store.write(vec![typed::put(&record)?]).await?;
        registry
            .save_activation(BUILTIN_OWNER, kind, builtin.name, &version, Vec::new(), Some(true))
            .await?;
        host.slot_or_insert(BUILTIN_OWNER, kind, builtin.name, true)
            .activate(&version, compiled);
    }
    Ok(())
}
