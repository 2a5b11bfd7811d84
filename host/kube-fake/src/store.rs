//! The API server's state: objects by (resource, namespace, name), one
//! resourceVersion counter for all of them (as etcd's revision), and the
//! recent change events that watches replay from a resourceVersion.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::time::now_rfc3339;

/// The resources the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Pods,
    ConfigMaps,
    Namespaces,
}

impl Resource {
    pub fn parse(plural: &str) -> Option<Self> {
        match plural {
            "pods" => Some(Resource::Pods),
            "configmaps" => Some(Resource::ConfigMaps),
            "namespaces" => Some(Resource::Namespaces),
            _ => None,
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::ConfigMaps => "configmaps",
            Resource::Namespaces => "namespaces",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::Pods => "Pod",
            Resource::ConfigMaps => "ConfigMap",
            Resource::Namespaces => "Namespace",
        }
    }

    pub fn namespaced(self) -> bool {
        self != Resource::Namespaces
    }
}

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
pub struct Event {
    pub resource: Resource,
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub revision: u64,
    pub object: Value,
}

/// How many past events a watch can resume from; older resourceVersions
/// get `410 Expired`, as from a compacted etcd.
pub const HISTORY: usize = 1024;

type Key = (Resource, String, String);

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    revision: u64,
    history: VecDeque<Event>,
}

/// The shared state; cheap to clone.
#[derive(Clone)]
pub struct Store {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<Event>,
}

/// Why a change was refused (mapped to a Status by the API).
#[derive(Debug)]
pub enum Refusal {
    NotFound,
    AlreadyExists,
    /// A stale `metadata.resourceVersion` in an update.
    Conflict(String),
}

impl Store {
    pub fn new(namespaces: &[&str]) -> Self {
        let (events, _) = broadcast::channel(HISTORY);
        let store = Self {
            state: Arc::default(),
            events,
        };
        for namespace in namespaces {
            let _ = store.create(
                Resource::Namespaces,
                "",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            );
        }
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        let state = self.lock();
        state
            .objects
            .get(&(resource, namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every object of `resource` (in `namespace`, or all when `None`), in
    /// name order, and the revision they are current at.
    pub fn list(&self, resource: Resource, namespace: Option<&str>) -> (Vec<Value>, u64) {
        let state = self.lock();
        let items = state
            .objects
            .iter()
            .filter(|((r, ns, _), _)| *r == resource && namespace.is_none_or(|want| want == ns))
            .map(|(_, object)| object.clone())
            .collect();
        (items, state.revision)
    }

    /// The events after `revision` for a resuming watch, with those it
    /// must not miss; `None` when `revision` is older than the history.
    pub fn since(&self, revision: u64) -> Option<(Vec<Event>, broadcast::Receiver<Event>)> {
        let state = self.lock();
        // Subscribe under the lock: nothing is published in between.
        let receiver = self.events.subscribe();
        let oldest = state
            .history
            .front()
            .map_or(state.revision, |e| e.revision.saturating_sub(1));
        if revision < oldest {
            return None;
        }
        let events = state
            .history
            .iter()
            .filter(|e| e.revision > revision)
            .cloned()
            .collect();
        Some((events, receiver))
    }

    /// The current objects (a watch from "now") and a receiver for what
    /// follows.
    pub fn snapshot(&self, resource: Resource) -> (Vec<(String, Value)>, u64, broadcast::Receiver<Event>) {
        let state = self.lock();
        let receiver = self.events.subscribe();
        let objects = state
            .objects
            .iter()
            .filter(|((r, _, _), _)| *r == resource)
            .map(|((_, ns, _), object)| (ns.clone(), object.clone()))
            .collect();
        (objects, state.revision, receiver)
    }

    fn publish(state: &mut State, events: &broadcast::Sender<Event>, event: Event) {
        state.history.push_back(event.clone());
        while state.history.len() > HISTORY {
            state.history.pop_front();
        }
        let _ = events.send(event);
    }

    /// Stores a new object, filling in what the server owns: namespace,
    /// uid, resourceVersion, creationTimestamp, generation.
    pub fn create(&self, resource: Resource, namespace: &str, mut object: Value) -> Result<Value, Refusal> {
        let mut state = self.lock();
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let key = (resource, namespace.to_owned(), name);
        if state.objects.contains_key(&key) {
            return Err(Refusal::AlreadyExists);
        }
        state.revision += 1;
        let revision = state.revision;
        let metadata = &mut object["metadata"];
        if resource.namespaced() {
            metadata["namespace"] = json!(namespace);
        }
        metadata["uid"] = json!(uuid::Uuid::new_v4().to_string());
        metadata["resourceVersion"] = json!(revision.to_string());
        metadata["creationTimestamp"] = json!(now_rfc3339());
        metadata["generation"] = json!(1);
        state.objects.insert(key, object.clone());
        let event = Event {
            resource,
            namespace: namespace.to_owned(),
            kind: "ADDED",
            revision,
            object: object.clone(),
        };
        Self::publish(&mut state, &self.events, event);
        Ok(object)
    }

    /// Replaces an object with what `change` makes of it (the current one
    /// passed in), bumping its resourceVersion. `change` may refuse.
    pub fn update<E>(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&Value) -> Result<Value, E>,
    ) -> Result<Result<Value, E>, Refusal> {
        let mut state = self.lock();
        let key = (resource, namespace.to_owned(), name.to_owned());
        let current = state.objects.get(&key).ok_or(Refusal::NotFound)?.clone();
        let mut next = match change(&current) {
            Ok(next) => next,
            Err(e) => return Ok(Err(e)),
        };
        let sent = next["metadata"]["resourceVersion"].as_str().map(str::to_owned);
        let stored = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if sent.as_deref().is_some_and(|sent| sent != stored) {
            return Err(Refusal::Conflict(format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                resource.plural()
            )));
        }
        if next == current {
            return Ok(Ok(current));
        }
        // What the server owns stays as it was.
        for field in ["uid", "creationTimestamp", "namespace", "name"] {
            next["metadata"][field] = current["metadata"][field].clone();
        }
        if next.get("spec") != current.get("spec") {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
            next["metadata"]["generation"] = json!(generation + 1);
        }
        state.revision += 1;
        let revision = state.revision;
        next["metadata"]["resourceVersion"] = json!(revision.to_string());
        state.objects.insert(key, next.clone());
        let event = Event {
            resource,
            namespace: namespace.to_owned(),
            kind: "MODIFIED",
            revision,
            object: next.clone(),
        };
        Self::publish(&mut state, &self.events, event);
        Ok(Ok(next))
    }

    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) -> Result<Value, Refusal> {
        let mut state = self.lock();
        let key = (resource, namespace.to_owned(), name.to_owned());
        let mut object = state.objects.remove(&key).ok_or(Refusal::NotFound)?;
        state.revision += 1;
        let revision = state.revision;
        object["metadata"]["resourceVersion"] = json!(revision.to_string());
        let event = Event {
            resource,
            namespace: namespace.to_owned(),
            kind: "DELETED",
            revision,
            object: object.clone(),
        };
        Self::publish(&mut state, &self.events, event);
        Ok(object)
    }
}
