//! The plugin registry: uploaded versions (binary in the BlobStore, record
//! in the Store), the active version of each slot, activation, rollback and
//! deletion — persisted first, then swapped in memory, so a restart comes
//! back with the same active versions.

use std::sync::Arc;

use pop_core::visibility::Caller;
use pop_core::{ObjectKind, PluginActivation, PluginKind, PluginVersion};
use pop_ports::{Document, Query, Write};
use pop_wasm::CompiledPlugin;

use super::{BUILTIN_OWNER, PluginHost};
use crate::domain::body::{from_document, to_document};
use crate::domain::objects::{get_visible, stamp_new};
use crate::domain::typed::TypedStore;
use crate::error::{AppError, AppResult};
use crate::plugins::upload::Upload;

pub struct Registry<'a> {
    host: &'a PluginHost,
}

impl<'a> Registry<'a> {
    pub fn new(host: &'a PluginHost) -> Self {
        Self { host }
    }

    /// Validate and store a new version; activate it when asked.
    pub async fn upload(&self, caller: &Caller, upload: Upload, cid: &str) -> AppResult<Document> {
        let owner = match upload.customer_id.clone() {
            Some(owner) => owner,
            None => caller
                .sole_account()
                .map(String::from)
                .ok_or_else(|| AppError::Validation("The customerId field of the plugin must be specified.".into()))?,
        };
        if owner == BUILTIN_OWNER {
            return Err(AppError::Forbidden(format!(
                "The customer id '{BUILTIN_OWNER}' is reserved for built-ins."
            )));
        }
        if !caller.owns(Some(&owner)) {
            return Err(AppError::forbidden_customer(&owner));
        }
        if upload.is_global && !caller.super_user {
            return Err(AppError::Forbidden(
                "Only super users may upload global plugins.".into(),
            ));
        }
        let id = PluginVersion::id_for(&owner, upload.kind, &upload.name, &upload.version);
        if self.host.store.get(ObjectKind::Plugin, &id).await?.is_some() {
            return Err(AppError::Conflict(format!(
                "Plugin {id} already exists; upload a new version."
            )));
        }
        let compiled = self.compile(upload.kind, upload.wasm.clone()).await?;
        let contract_version = compiled.contract().version();
        self.smoke_test(compiled).await?;
        let sha256 = self.host.blobs.put(upload.wasm.clone()).await?;
        let mut version = PluginVersion {
            plugin_kind: Some(upload.kind),
            name: Some(upload.name.clone()),
            version: Some(upload.version.clone()),
            sha256: Some(sha256),
            size_bytes: Some(upload.wasm.len() as i64),
            contract_version: Some(contract_version.into()),
            is_global: Some(upload.is_global),
            failure_count: Some(0),
            ..Default::default()
        };
        version.envelope.id = Some(id.clone());
        version.envelope.customer_id = Some(owner.clone());
        version.envelope.title = Some(upload.name.clone());
        let mut doc = to_document(&version)?;
        stamp_new(&mut doc, cid, self.host.now_millis());
        let mut stored = self
            .host
            .store
            .write(vec![Write::create(ObjectKind::Plugin, doc)])
            .await?;
        let doc = stored
            .pop()
            .flatten()
            .ok_or_else(|| AppError::Internal("upload stored nothing".into()))?;
        // The owner changed something: the slot's versions get a fresh chance.
        let slot_id = PluginVersion::slot_id(&owner, upload.kind, &upload.name);
        self.host.breakers.reset_slot(&slot_id);
        if upload.activate {
            self.activate(caller, &id).await?;
        }
        Ok(doc)
    }

    /// Make a version the active one of its slot.
    pub async fn activate(&self, caller: &Caller, version_id: &str) -> AppResult<Document> {
        let version = self.owned_version(caller, version_id).await?;
        let (owner, kind, name, label) = parts(&version)?;
        let compiled = self.load(&version).await?;
        let slot_id = PluginVersion::slot_id(&owner, kind, &name);
        let mut activation = self.activation(&slot_id).await?.unwrap_or_default();
        let mut history = activation.history.take().unwrap_or_default();
        if let Some(previous) = activation.active_version.take().filter(|p| *p != label) {
            history.retain(|v| *v != previous);
            history.push(previous);
        }
        let activation = self
            .save_activation(&owner, kind, &name, &label, history, version.is_global)
            .await?;
        let slot = self
            .host
            .slot_or_insert(&owner, kind, &name, version.is_global.unwrap_or(false));
        slot.activate(&label, compiled);
        self.host.breakers.reset_slot(&slot_id);
        tracing::info!(slot = slot_id, version = label, "plugin activated");
        Ok(activation)
    }

    /// Re-activate the version that was active before the current one.
    pub async fn rollback(&self, caller: &Caller, slot_id: &str) -> AppResult<Document> {
        let stored = get_visible(self.host.store.as_ref(), caller, ObjectKind::PluginActivation, slot_id).await?;
        let activation: PluginActivation = from_document(stored)?;
        let owner = activation.envelope.customer_id.clone().unwrap_or_default();
        if !caller.owns(Some(&owner)) || owner == BUILTIN_OWNER {
            return Err(AppError::forbidden_customer(&owner));
        }
        let mut history = activation.history.clone().unwrap_or_default();
        let Some(previous) = history.pop() else {
            return Err(AppError::Conflict(format!(
                "Plugin {slot_id} has no earlier version to roll back to."
            )));
        };
        let kind = activation
            .plugin_kind
            .ok_or_else(|| AppError::Internal("activation without kind".into()))?;
        let name = activation.name.clone().unwrap_or_default();
        let version_id = format!("{slot_id}@{previous}");
        let version: PluginVersion = match self.host.store.load(&version_id).await? {
            Some(version) => version,
            None => {
                return Err(AppError::Conflict(format!(
                    "Version {version_id} was deleted; cannot roll back."
                )));
            }
        };
        let compiled = self.load(&version).await?;
        let saved = self
            .save_activation(&owner, kind, &name, &previous, history, activation.is_global)
            .await?;
        let slot = self
            .host
            .slot_or_insert(&owner, kind, &name, activation.is_global.unwrap_or(false));
        slot.activate(&previous, compiled);
        self.host.breakers.reset_slot(slot_id);
        tracing::info!(slot = slot_id, version = previous, "plugin rolled back");
        Ok(saved)
    }

    /// Delete a version that is not active.
    pub async fn delete(&self, caller: &Caller, version_id: &str) -> AppResult<Document> {
        let version = self.owned_version(caller, version_id).await?;
        let (owner, kind, name, label) = parts(&version)?;
        let slot_id = PluginVersion::slot_id(&owner, kind, &name);
        let mut writes = vec![Write::delete(ObjectKind::Plugin, version_id)];
        if let Some(mut activation) = self.activation(&slot_id).await? {
            if activation.active_version.as_deref() == Some(label.as_str()) {
                return Err(AppError::Conflict(format!(
                    "Plugin {version_id} is the active version; activate or roll back to another one first."
                )));
            }
            if let Some(history) = activation.history.as_mut() {
                history.retain(|v| *v != label);
            }
            let mut doc = to_document(&activation)?;
            doc.insert("updatedTime".into(), self.host.now_millis().into());
            writes.push(Write::put(ObjectKind::PluginActivation, doc));
        }
        let mut removed = self.host.store.write(writes).await?;
        let sha = version.sha256.clone().unwrap_or_default();
        let still_used = self
            .host
            .store
            .query(ObjectKind::Plugin, &Query::all(), None)
            .await?
            .iter()
            .any(|d| d.get("sha256").and_then(|s| s.as_str()) == Some(sha.as_str()));
        if !still_used && !sha.is_empty() {
            self.host.blobs.delete(&sha).await?;
        }
        removed
            .swap_remove(0)
            .ok_or_else(|| AppError::NotFound(format!("Plugin {version_id} not found")))
    }

    /// Compile and activate every persisted active version (at start-up).
    pub async fn restore(&self) -> AppResult<()> {
        let activations: Vec<PluginActivation> = self.host.store.load_where(&Query::all(), None).await?;
        for activation in activations {
            let owner = activation.envelope.customer_id.clone().unwrap_or_default();
            let (Some(kind), Some(name), Some(active)) = (
                activation.plugin_kind,
                activation.name.clone(),
                activation.active_version.clone(),
            ) else {
                continue;
            };
            if owner == BUILTIN_OWNER {
                continue;
            }
            let version_id = PluginVersion::id_for(&owner, kind, &name, &active);
            let restored = async {
                let version: PluginVersion = self
                    .host
                    .store
                    .load(&version_id)
                    .await?
                    .ok_or_else(|| AppError::NotFound(version_id.clone()))?;
                self.load(&version).await
            }
            .await;
            match restored {
                Ok(compiled) => {
                    let slot = self
                        .host
                        .slot_or_insert(&owner, kind, &name, activation.is_global.unwrap_or(false));
                    slot.activate(&active, compiled);
                }
                Err(e) => tracing::error!(plugin = version_id, error = %e, "could not restore an active plugin"),
            }
        }
        Ok(())
    }

    async fn owned_version(&self, caller: &Caller, version_id: &str) -> AppResult<PluginVersion> {
        let doc = get_visible(self.host.store.as_ref(), caller, ObjectKind::Plugin, version_id).await?;
        let version: PluginVersion = from_document(doc)?;
        let owner = version.envelope.customer_id.clone().unwrap_or_default();
        if !caller.owns(Some(&owner)) || owner == BUILTIN_OWNER {
            return Err(AppError::forbidden_customer(&owner));
        }
        Ok(version)
    }

    async fn activation(&self, slot_id: &str) -> AppResult<Option<PluginActivation>> {
        self.host.store.load(slot_id).await
    }

    pub(super) async fn save_activation(
        &self,
        owner: &str,
        kind: PluginKind,
        name: &str,
        active: &str,
        history: Vec<String>,
        is_global: Option<bool>,
    ) -> AppResult<Document> {
        let mut activation = PluginActivation {
            plugin_kind: Some(kind),
            name: Some(name.into()),
            active_version: Some(active.into()),
            history: Some(history),
            is_global,
            ..Default::default()
        };
        activation.envelope.id = Some(PluginVersion::slot_id(owner, kind, name));
        activation.envelope.customer_id = Some(owner.into());
        activation.envelope.title = Some(name.into());
        let now = self.host.now_millis();
        activation.envelope.updated_time = Some(now);
        activation.envelope.added_time = Some(now);
        let mut stored = self
            .host
            .store
            .write(vec![Write::put(
                ObjectKind::PluginActivation,
                to_document(&activation)?,
            )])
            .await?;
        stored
            .pop()
            .flatten()
            .ok_or_else(|| AppError::Internal("activation stored nothing".into()))
    }

    /// The compiled plugin of a stored version (from the runtime's cache,
    /// else from its blob).
    async fn load(&self, version: &PluginVersion) -> AppResult<Arc<CompiledPlugin>> {
        let kind = version
            .plugin_kind
            .ok_or_else(|| AppError::Internal("plugin version without kind".into()))?;
        let sha = version.sha256.clone().unwrap_or_default();
        if let Some(compiled) = self.host.runtime.cached(kind, &sha) {
            return Ok(compiled);
        }
        let wasm = self
            .host
            .blobs
            .get(&sha)
            .await?
            .ok_or_else(|| AppError::Internal(format!("the binary {sha} of a plugin is missing")))?;
        self.compile(kind, wasm).await
    }

    pub(super) async fn compile(&self, kind: PluginKind, wasm: Vec<u8>) -> AppResult<Arc<CompiledPlugin>> {
        let runtime = self.host.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.compile(kind, &wasm))
            .await
            .map_err(|e| AppError::Internal(format!("compile task failed: {e}")))?
            .map_err(|e| AppError::Validation(format!("The plugin was refused: {e}")))
    }

    /// One call under the limits with a harmless input: a plugin that loops,
    /// explodes or answers nonsense is refused before anyone can activate it.
    async fn smoke_test(&self, plugin: Arc<CompiledPlugin>) -> AppResult<()> {
        let runtime = self.host.runtime.clone();
        let outcome = tokio::task::spawn_blocking(move || super::smoke::call(&runtime, &plugin))
            .await
            .map_err(|e| AppError::Internal(format!("smoke task failed: {e}")))?;
        match outcome {
            Ok(()) | Err(pop_wasm::PluginFailure::Refused(_)) => Ok(()),
            Err(failure) => Err(AppError::Validation(format!(
                "The plugin failed its smoke call under the limits: {failure}"
            ))),
        }
    }
}

/// Owner, kind, name and version of a stored version.
fn parts(version: &PluginVersion) -> AppResult<(String, PluginKind, String, String)> {
    let missing = || AppError::Internal("incomplete plugin version record".into());
    Ok((
        version.envelope.customer_id.clone().ok_or_else(missing)?,
        version.plugin_kind.ok_or_else(missing)?,
        version.name.clone().ok_or_else(missing)?,
        version.version.clone().ok_or_else(missing)?,
    ))
}
