//! The object store: every object the simulated API server holds, one global `resourceVersion`
//! counter bumped by every write, the bounded change history watches replay from, and the
//! broadcast channel that fans each change out to open watches and wakes the controllers.
//!
//! The store is plain synchronous data behind one `std::sync::Mutex` (in [`super::Sim`]);
//! every write happens with the lock held, which makes "assign a resourceVersion, record the
//! change, broadcast it" atomic, so a watch that subscribes under the same lock sees no gap.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::{Notify, broadcast};

use super::controllers::CtlState;
use super::kubelet::Behaviours;

/// How many changes watches can replay from before a resume gets `410 Expired`.
const HISTORY: usize = 5000;

/// Where an object lives: resource plural, namespace ("" when cluster-scoped), name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub resource: &'static str,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub(crate) fn new(resource: &'static str, namespace: &str, name: &str) -> Self {
        Self {
            resource,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// `Apply` (server-side apply) or `Update` (create, update, merge patch) ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Apply,
    Update,
}

/// A field path: object keys from the root (`["spec", "replicas"]`); lists are atomic leaves.
pub(crate) type FieldPath = Vec<String>;

/// One `managedFields` entry: which fields a manager owns, and how it set them.
#[derive(Debug, Clone)]
pub(crate) struct ManagedEntry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: BTreeSet<FieldPath>,
}

/// A stored object and its field ownership (rendered into `metadata.managedFields` on the wire).
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub obj: Value,
    pub managed: Vec<ManagedEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One write, as watches see it.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub resource: &'static str,
    pub namespace: String,
    pub kind: ChangeType,
    /// The object after the write (the final state for a delete), as served.
    pub object: Value,
    /// The object before the write (to turn a MODIFIED into ADDED/DELETED for selectors).
    pub old: Option<Value>,
}

/// Everything behind the state mutex.
pub(crate) struct World {
    rv: u64,
    objects: BTreeMap<Key, Stored>,
    history: VecDeque<Arc<Change>>,
    /// Watches may resume from any resourceVersion >= floor.
    floor: u64,
    tx: broadcast::Sender<Arc<Change>>,
    wake: Arc<Notify>,
    pub(crate) behaviours: Behaviours,
    pub(crate) ctl: CtlState,
    counter: u64,
    /// The last state of every object ever written, deleted ones included (what an audit log
    /// would show; tests read it for objects that lived only briefly).
    written: BTreeMap<Key, Value>,
    /// Log lines tests wrote into running containers ([`super::KubeSim::write_log`]).
    pub(crate) logs: super::kubelet::WrittenLogs,
}

/// The current time as the API server writes it (RFC 3339, seconds).
pub(crate) fn now_string() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Renders owned field paths as `fieldsV1` (`{"f:spec":{"f:replicas":{}}}`).
fn fields_v1(fields: &BTreeSet<FieldPath>) -> Value {
    fn insert(map: &mut Map<String, Value>, path: &[String]) {
        if let Some((first, rest)) = path.split_first() {
            let entry = map
                .entry(format!("f:{first}"))
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                insert(m, rest);
            }
        }
    }
    let mut root = Map::new();
    for path in fields {
        insert(&mut root, path);
    }
    Value::Object(root)
}

impl Stored {
    /// The object as the API returns it: with `metadata.managedFields`.
    pub(crate) fn render(&self) -> Value {
        let mut v = self.obj.clone();
        if !self.managed.is_empty()
            && let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut)
        {
            let entries: Vec<Value> = self
                .managed
                .iter()
                .filter(|m| !m.fields.is_empty())
                .map(|m| {
                    let mut e = json!({
                        "manager": m.manager,
                        "operation": match m.operation { Operation::Apply => "Apply", Operation::Update => "Update" },
                        "apiVersion": m.api_version,
                        "time": m.time,
                        "fieldsType": "FieldsV1",
                        "fieldsV1": fields_v1(&m.fields),
                    });
                    if let Some(s) = &m.subresource {
                        e["subresource"] = json!(s);
                    }
                    e
                })
                .collect();
            if !entries.is_empty() {
                meta.insert("managedFields".to_owned(), Value::Array(entries));
            }
        }
        v
    }
}

impl World {
    pub(crate) fn new(tx: broadcast::Sender<Arc<Change>>, wake: Arc<Notify>) -> Self {
        Self {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            floor: 0,
            tx,
            wake,
            behaviours: Behaviours::default(),
            ctl: CtlState::default(),
            counter: 0,
            written: BTreeMap::new(),
            logs: super::kubelet::WrittenLogs::default(),
        }
    }

    /// The latest resourceVersion.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    /// A number no other caller got (IPs, names).
    pub(crate) fn next_counter(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    pub(crate) fn get(&self, key: &Key) -> Option<&Stored> {
        self.objects.get(key)
    }

    pub(crate) fn get_obj(&self, resource: &'static str, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&Key::new(resource, ns, name))
            .map(|s| &s.obj)
    }

    /// Objects of one resource, in one namespace or (None) all, ordered by namespace and name.
    pub(crate) fn iter(
        &self,
        resource: &'static str,
        ns: Option<&str>,
    ) -> impl Iterator<Item = (&Key, &Stored)> {
        let start = Key::new(resource, ns.unwrap_or(""), "");
        let ns = ns.map(str::to_owned);
        self.objects.range(start..).take_while(move |(k, _)| {
            k.resource == resource && ns.as_deref().is_none_or(|n| k.namespace == n)
        })
    }

    /// Cloned objects of one resource (controllers iterate these while writing).
    pub(crate) fn objs(&self, resource: &'static str, ns: Option<&str>) -> Vec<Value> {
        self.iter(resource, ns)
            .map(|(_, s)| s.obj.clone())
            .collect()
    }

    /// Every key in one namespace (any resource).
    pub(crate) fn keys_in_namespace(&self, ns: &str) -> Vec<Key> {
        self.objects
            .keys()
            .filter(|k| k.namespace == ns)
            .cloned()
            .collect()
    }

    /// Stores `obj` under `key` (ADDED if new, MODIFIED otherwise) with a new resourceVersion;
    /// returns the object as served.
    pub(crate) fn write(&mut self, key: Key, mut obj: Value, managed: Vec<ManagedEntry>) -> Value {
        self.rv += 1;
        let rv = self.rv;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".to_owned(), json!(rv.to_string()));
            meta.remove("managedFields");
        }
        self.written.insert(key.clone(), obj.clone());
        let stored = Stored { obj, managed };
        let rendered = stored.render();
        let old = self.objects.insert(key.clone(), stored).map(|s| s.render());
        let kind = if old.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.publish(Change {
            rv,
            resource: key.resource,
            namespace: key.namespace,
            kind,
            object: rendered.clone(),
            old,
        });
        rendered
    }

    /// The last state of every object of `resource` ever written in `ns` (None: all), deleted
    /// ones included, ordered by namespace and name.
    pub(crate) fn written(&self, resource: &str, ns: Option<&str>) -> Vec<Value> {
        self.written
            .iter()
            .filter(|(k, _)| k.resource == resource && ns.is_none_or(|n| k.namespace == n))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Removes an object (DELETED with a new resourceVersion); returns its final state.
    pub(crate) fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut stored = self.objects.remove(key)?;
        self.rv += 1;
        let rv = self.rv;
        if let Some(meta) = stored
            .obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
        {
            meta.insert("resourceVersion".to_owned(), json!(rv.to_string()));
        }
        let rendered = stored.render();
        self.publish(Change {
            rv,
            resource: key.resource,
            namespace: key.namespace.clone(),
            kind: ChangeType::Deleted,
            object: rendered.clone(),
            old: None,
        });
        Some(rendered)
    }

    fn publish(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > HISTORY {
            if let Some(c) = self.history.pop_front() {
                self.floor = c.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(change);
        self.wake.notify_one();
    }

    /// Wakes the controllers without a write (a behaviour changed).
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    /// Changes after `rv`, or Err(floor) when `rv` is older than the history holds.
    pub(crate) fn since(&self, rv: u64) -> Result<Vec<Arc<Change>>, u64> {
        if rv < self.floor {
            return Err(self.floor);
        }
        Ok(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Forgets the history: every resourceVersion handed out so far becomes too old to resume
    /// a watch from (the next one gets a `410 Expired` ERROR event).
    pub(crate) fn expire_history(&mut self) {
        self.history.clear();
        self.rv += 1;
        self.floor = self.rv;
    }
}
