//! The generic verbs over the store — get, list, create, server-side apply, merge patch,
//! update, delete, delete collection — with the real server's preconditions and errors:
//! namespace lifecycle (404 missing, 403 Terminating), `AlreadyExists`, optimistic concurrency,
//! field-manager conflicts, validation, defaulting, admission, `generation`, and cascading
//! deletion through owner references. Everything runs synchronously under the state lock;
//! controllers call the same functions the HTTP routes do.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::admission;
use super::apply::{self, leaves, owned_view, strip_nulls};
use super::defaults::apply_defaults;
use super::resources::{self, ResourceDef};
use super::selectors::Selectors;
use super::status::{ApiError, Cause, success_status};
use super::store::{Key, ManagedEntry, Operation, Stored, World, now_string};
use super::validate::validate;

/// Per-request write options.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteOpts {
    pub manager: String,
    pub dry_run: bool,
    pub force: bool,
    /// The `status` subresource.
    pub status: bool,
}

impl WriteOpts {
    pub(crate) fn manager(manager: &str) -> Self {
        Self {
            manager: manager.to_owned(),
            ..Self::default()
        }
    }
}

/// Metadata only the server sets.
const SYSTEM_META: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
    "selfLink",
];

pub(crate) fn key(rd: &ResourceDef, ns: &str, name: &str) -> Key {
    Key::new(rd.plural, if rd.namespaced { ns } else { "" }, name)
}

pub(crate) fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `n` random characters from the alphabet the real server uses for generated names.
pub(crate) fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .into_bytes()
        .iter()
        .take(n)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

fn set_type(rd: &ResourceDef, obj: &mut Value) {
    obj["apiVersion"] = json!(rd.api_version());
    obj["kind"] = json!(rd.kind);
}

/// Checks `apiVersion`/`kind` in a body (required for apply).
fn check_type(rd: &ResourceDef, body: &Value, required: bool) -> Result<(), ApiError> {
    let av = body.get("apiVersion").and_then(Value::as_str);
    let kind = body.get("kind").and_then(Value::as_str);
    if required && kind.is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{body}'"
        )));
    }
    if required && av.is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!(
            "Object 'apiVersion' is missing in '{body}'"
        )));
    }
    if let Some(av) = av
        && av != rd.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rd.api_version()
        )));
    }
    if let Some(kind) = kind
        && kind != rd.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            rd.kind
        )));
    }
    Ok(())
}

/// Checks the body's namespace against the URL's and sets it.
fn check_namespace(rd: &ResourceDef, ns: &str, body: &mut Value) -> Result<(), ApiError> {
    let meta = meta_mut(body);
    if rd.namespaced {
        if let Some(n) = meta.get("namespace").and_then(Value::as_str)
            && !n.is_empty()
            && n != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta.insert("namespace".to_owned(), json!(ns));
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

fn check_name(body: &mut Value, name: &str) -> Result<(), ApiError> {
    let meta = meta_mut(body);
    match meta.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => {
            meta.insert("name".to_owned(), json!(name));
            Ok(())
        }
    }
}

fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

/// 404 for a missing namespace, 403 for a Terminating one.
pub(crate) fn namespace_gate(
    w: &World,
    rd: &ResourceDef,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    if !rd.namespaced {
        return Ok(());
    }
    match w.get_obj("namespaces", "", ns) {
        None => Err(ApiError::namespace_not_found(ns)),
        Some(n) if is_deleting(n) => Err(ApiError::forbidden(
            rd,
            name,
            &format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        )),
        Some(_) => Ok(()),
    }
}

pub(crate) fn get(w: &World, rd: &ResourceDef, ns: &str, name: &str) -> Result<Value, ApiError> {
    w.get(&key(rd, ns, name))
        .map(Stored::render)
        .ok_or_else(|| ApiError::not_found(rd, name))
}

/// A `{Kind}List` of the matching objects, paginated by `limit`/`continue`.
pub(crate) fn list(
    w: &World,
    rd: &ResourceDef,
    ns: Option<&str>,
    sel: &Selectors,
    limit: Option<usize>,
    cont: Option<&str>,
) -> Value {
    let after: Option<(String, String)> = cont.and_then(|c| {
        let (n, m) = c.split_once('/')?;
        Some((n.to_owned(), m.to_owned()))
    });
    let matching: Vec<(&Key, &Stored)> = w
        .iter(rd.plural, ns)
        .filter(|(k, _)| {
            after.as_ref().is_none_or(|(n, m)| {
                (k.namespace.as_str(), k.name.as_str()) > (n.as_str(), m.as_str())
            })
        })
        .filter(|(_, s)| sel.matches(&s.obj))
        .collect();
    let take = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let mut meta = json!({ "resourceVersion": w.rv().to_string() });
    if matching.len() > take {
        let (last, _) = matching[take - 1];
        meta["continue"] = json!(format!("{}/{}", last.namespace, last.name));
        meta["remainingItemCount"] = json!(matching.len() - take);
    }
    let items: Vec<Value> = matching
        .iter()
        .take(take)
        .map(|(_, s)| s.render())
        .collect();
    json!({
        "kind": rd.list_kind(),
        "apiVersion": rd.api_version(),
        "metadata": meta,
        "items": items,
    })
}

/// Stores a new object after validation, defaulting and admission.
fn commit_create(
    w: &mut World,
    rd: &'static ResourceDef,
    ns: &str,
    mut obj: Value,
    managed: Vec<ManagedEntry>,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let name = meta_str(&obj, "name").to_owned();
    validate(rd, &obj, None)?;
    namespace_gate(w, rd, ns, &name)?;
    let k = key(rd, ns, &name);
    if w.get(&k).is_some() {
        return Err(ApiError::already_exists(rd, &name));
    }
    set_type(rd, &mut obj);
    let meta = meta_mut(&mut obj);
    meta.insert("uid".to_owned(), json!(new_uid()));
    meta.insert("creationTimestamp".to_owned(), json!(now_string()));
    meta.insert("generation".to_owned(), json!(1));
    apply_defaults(w, rd, &mut obj);
    validate(rd, &obj, None)?;
    admission::admit_create(w, rd, ns, &mut obj)?;
    if dry_run {
        return Ok(obj);
    }
    Ok(w.write(k, obj, managed))
}

/// POST: creates an object (`generateName` honoured).
pub(crate) fn create(
    w: &mut World,
    rd: &'static ResourceDef,
    ns: &str,
    mut body: Value,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a JSON object",
        ));
    }
    check_type(rd, &body, false)?;
    strip_nulls(&mut body);
    check_namespace(rd, ns, &mut body)?;
    let meta = meta_mut(&mut body);
    for f in SYSTEM_META {
        meta.remove(*f);
    }
    if meta
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        match meta.get("generateName").and_then(Value::as_str) {
            Some(g) if !g.is_empty() => {
                let name = format!("{g}{}", random_suffix(5));
                meta.insert("name".to_owned(), json!(name));
            }
            _ => {
                return Err(ApiError::invalid(
                    rd,
                    "",
                    &[Cause::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
        }
    }
    if rd.has_status
        && let Some(m) = body.as_object_mut()
    {
        m.remove("status");
    }
    set_type(rd, &mut body);
    let managed = apply::record_update(&[], None, &body, &opts.manager, &rd.api_version(), false);
    commit_create(w, rd, ns, body, managed, opts.dry_run)
}

/// Stores a changed object (or nothing, when nothing changed).
fn commit_update(
    w: &mut World,
    rd: &'static ResourceDef,
    k: &Key,
    old: &Stored,
    mut new: Value,
    managed: Vec<ManagedEntry>,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    set_type(rd, &mut new);
    if opts.status {
        let status = new.get("status").cloned();
        new = old.obj.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    } else if let Some(m) = new.as_object_mut() {
        match old.obj.get("status") {
            Some(s) => {
                m.insert("status".to_owned(), s.clone());
            }
            None => {
                m.remove("status");
            }
        }
    }
    {
        let old_meta = old.obj.get("metadata").and_then(Value::as_object);
        let meta = meta_mut(&mut new);
        for f in SYSTEM_META.iter().chain(["name", "namespace"].iter()) {
            match old_meta.and_then(|m| m.get(*f)) {
                Some(v) => {
                    meta.insert((*f).to_owned(), v.clone());
                }
                None => {
                    meta.remove(*f);
                }
            }
        }
        meta.remove("generateName");
        if let Some(g) = old_meta.and_then(|m| m.get("generateName")) {
            meta.insert("generateName".to_owned(), g.clone());
        }
    }
    apply_defaults(w, rd, &mut new);
    validate(rd, &new, Some(&old.obj))?;
    let body_of = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    if !opts.status && body_of(&old.obj) != body_of(&new) {
        let generation = old
            .obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        meta_mut(&mut new).insert("generation".to_owned(), json!(generation + 1));
    }
    let same_owners = old.managed.len() == managed.len()
        && old.managed.iter().zip(&managed).all(|(a, b)| {
            a.manager == b.manager
                && a.operation == b.operation
                && a.subresource == b.subresource
                && a.fields == b.fields
        });
    let managed = if same_owners {
        old.managed.clone()
    } else {
        managed
    };
    if new == old.obj && same_owners {
        return Ok(old.render());
    }
    if opts.dry_run {
        return Ok(Stored { obj: new, managed }.render());
    }
    let finalizers_empty = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if is_deleting(&new) && finalizers_empty && rd.plural != "namespaces" {
        w.write(k.clone(), new, managed);
        return w.remove(k).ok_or_else(|| ApiError::not_found(rd, &k.name));
    }
    Ok(w.write(k.clone(), new, managed))
}

fn check_resource_version(
    rd: &ResourceDef,
    body: &Value,
    current: &Value,
    name: &str,
) -> Result<(), ApiError> {
    let want = meta_str(body, "resourceVersion");
    if !want.is_empty() && want != meta_str(current, "resourceVersion") {
        return Err(ApiError::conflict_modified(rd, name));
    }
    Ok(())
}

/// PATCH `application/apply-patch+yaml`: server-side apply; 201 when it created the object.
pub(crate) fn apply(
    w: &mut World,
    rd: &'static ResourceDef,
    ns: &str,
    name: &str,
    mut body: Value,
    opts: &WriteOpts,
) -> Result<(u16, Value), ApiError> {
    if opts.manager.is_empty() {
        return Err(ApiError::invalid_kind(
            "PatchOptions.meta.k8s.io",
            "PatchOptions",
            "meta.k8s.io",
            "",
            &[Cause::required(
                "fieldManager",
                "is required for apply patch",
            )],
        ));
    }
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a map",
        ));
    }
    check_type(rd, &body, true)?;
    strip_nulls(&mut body);
    check_name(&mut body, name)?;
    check_namespace(rd, ns, &mut body)?;
    let config = owned_view(&body, opts.status);
    let k = key(rd, ns, name);
    let Some(stored) = w.get(&k).cloned() else {
        if opts.status {
            return Err(ApiError::not_found(rd, name));
        }
        let mut obj = config.clone();
        set_type(rd, &mut obj);
        let meta = meta_mut(&mut obj);
        meta.insert("name".to_owned(), json!(name));
        if rd.namespaced {
            meta.insert("namespace".to_owned(), json!(ns));
        }
        let managed = vec![ManagedEntry {
            manager: opts.manager.clone(),
            operation: Operation::Apply,
            api_version: rd.api_version(),
            time: now_string(),
            subresource: None,
            fields: leaves(&config),
        }];
        return Ok((201, commit_create(w, rd, ns, obj, managed, opts.dry_run)?));
    };
    check_resource_version(rd, &body, &stored.obj, name)?;
    let (obj, managed) = apply::apply(
        &stored,
        &config,
        &opts.manager,
        opts.force,
        &rd.api_version(),
        opts.status,
    )
    .map_err(|c| ApiError::apply_conflict(rd, name, &c))?;
    Ok((200, commit_update(w, rd, &k, &stored, obj, managed, opts)?))
}

/// PATCH with a JSON merge patch (strategic merge patches are treated the same).
pub(crate) fn merge_patch(
    w: &mut World,
    rd: &'static ResourceDef,
    ns: &str,
    name: &str,
    patch: &Value,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a JSON object",
        ));
    }
    let k = key(rd, ns, name);
    let stored = w
        .get(&k)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rd, name))?;
    check_resource_version(rd, patch, &stored.obj, name)?;
    let mut new = stored.obj.clone();
    apply::merge_patch(&mut new, patch);
    let managed = apply::record_update(
        &stored.managed,
        Some(&stored.obj),
        &new,
        &opts.manager,
        &rd.api_version(),
        opts.status,
    );
    commit_update(w, rd, &k, &stored, new, managed, opts)
}

/// PUT: replaces an object, honouring `metadata.resourceVersion` as a precondition.
pub(crate) fn update(
    w: &mut World,
    rd: &'static ResourceDef,
    ns: &str,
    name: &str,
    mut body: Value,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a JSON object",
        ));
    }
    check_type(rd, &body, false)?;
    strip_nulls(&mut body);
    check_name(&mut body, name)?;
    check_namespace(rd, ns, &mut body)?;
    let k = key(rd, ns, name);
    let stored = w
        .get(&k)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rd, name))?;
    check_resource_version(rd, &body, &stored.obj, name)?;
    let managed = apply::record_update(
        &stored.managed,
        Some(&stored.obj),
        &body,
        &opts.manager,
        &rd.api_version(),
        opts.status,
    );
    commit_update(w, rd, &k, &stored, body, managed, opts)
}

/// Deletes every object in `ns` owned (via ownerReferences) by `uid`, recursively.
pub(crate) fn cascade(w: &mut World, ns: &str, uid: &str) {
    let dependents: Vec<(Key, String)> = w
        .keys_in_namespace(ns)
        .into_iter()
        .filter_map(|k| {
            let s = w.get(&k)?;
            let owned = s
                .obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
                });
            owned.then(|| (k.clone(), meta_str(&s.obj, "uid").to_owned()))
        })
        .collect();
    for (k, dep_uid) in dependents {
        cascade(w, ns, &dep_uid);
        w.remove(&k);
    }
}

/// Removes references to `uid` from its dependents (orphan propagation).
fn orphan(w: &mut World, ns: &str, uid: &str) {
    for k in w.keys_in_namespace(ns) {
        let Some(s) = w.get(&k).cloned() else {
            continue;
        };
        let Some(refs) = s
            .obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
        else {
            continue;
        };
        if !refs
            .iter()
            .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
        {
            continue;
        }
        let kept: Vec<Value> = refs
            .iter()
            .filter(|r| r.get("uid").and_then(Value::as_str) != Some(uid))
            .cloned()
            .collect();
        let mut obj = s.obj.clone();
        let meta = meta_mut(&mut obj);
        if kept.is_empty() {
            meta.remove("ownerReferences");
        } else {
            meta.insert("ownerReferences".to_owned(), Value::Array(kept));
        }
        w.write(k, obj, s.managed);
    }
}

/// DELETE one object. Namespaces turn Terminating (content removed, the namespace itself later
/// by the namespace controller); objects with finalizers or Foreground propagation get a
/// `deletionTimestamp` first; pods answer with the object, others with a success Status.
pub(crate) fn delete(
    w: &mut World,
    rd: &'static ResourceDef,
    ns: &str,
    name: &str,
    options: &Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let k = key(rd, ns, name);
    let stored = w
        .get(&k)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rd, name))?;
    let uid = meta_str(&stored.obj, "uid").to_owned();
    if let Some(want) = options
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        && want != uid
    {
        return Err(ApiError::conflict(
            rd,
            name,
            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
        ));
    }
    if let Some(want) = options
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
    {
        let have = meta_str(&stored.obj, "resourceVersion");
        if want != have {
            return Err(ApiError::conflict(
                rd,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {have}"
                ),
            ));
        }
    }
    if dry_run {
        return Ok(stored.render());
    }
    let now = now_string();
    if rd.plural == "namespaces" {
        if is_deleting(&stored.obj) {
            return Err(ApiError::conflict(
                rd,
                name,
                "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
            ));
        }
        let mut obj = stored.obj.clone();
        meta_mut(&mut obj).insert("deletionTimestamp".to_owned(), json!(now));
        obj["status"] = json!({ "phase": "Terminating" });
        let served = w.write(k, obj, stored.managed.clone());
        for content in w.keys_in_namespace(name) {
            w.remove(&content);
        }
        w.ctl.ns_deleting.insert(name.to_owned(), Instant::now());
        return Ok(served);
    }
    let propagation = match options.get("propagationPolicy").and_then(Value::as_str) {
        Some(p) => p.to_owned(),
        None if options.get("orphanDependents") == Some(&Value::Bool(true)) => "Orphan".to_owned(),
        // batch/v1 Jobs orphan their pods unless told otherwise, like the real server.
        None if rd.plural == "jobs" => "Orphan".to_owned(),
        None => "Background".to_owned(),
    };
    if !["Orphan", "Background", "Foreground"].contains(&propagation.as_str()) {
        return Err(ApiError::invalid_kind(
            "DeleteOptions.meta.k8s.io",
            "DeleteOptions",
            "meta.k8s.io",
            "",
            &[Cause::unsupported(
                "propagationPolicy",
                &propagation,
                &["Foreground", "Background", "Orphan"],
            )],
        ));
    }
    let finalizers: Vec<Value> = stored
        .obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !finalizers.is_empty() || propagation == "Foreground" {
        if is_deleting(&stored.obj) && propagation != "Foreground" {
            return Ok(stored.render());
        }
        let mut obj = stored.obj.clone();
        let meta = meta_mut(&mut obj);
        meta.entry("deletionTimestamp")
            .or_insert_with(|| json!(now));
        meta.insert("deletionGracePeriodSeconds".to_owned(), json!(0));
        let served = w.write(k.clone(), obj.clone(), stored.managed.clone());
        match propagation.as_str() {
            "Orphan" => orphan(w, ns, &uid),
            _ => cascade(w, ns, &uid),
        }
        if finalizers.is_empty() {
            w.remove(&k);
        }
        return Ok(served);
    }
    match propagation.as_str() {
        "Orphan" => orphan(w, ns, &uid),
        _ => cascade(w, ns, &uid),
    }
    if rd.plural == "pods" {
        let mut obj = stored.obj.clone();
        let meta = meta_mut(&mut obj);
        meta.insert("deletionTimestamp".to_owned(), json!(now));
        meta.insert("deletionGracePeriodSeconds".to_owned(), json!(0));
        w.write(k.clone(), obj, stored.managed.clone());
        return w.remove(&k).ok_or_else(|| ApiError::not_found(rd, name));
    }
    w.remove(&k);
    Ok(success_status(rd, name, &uid))
}

/// DELETE on a collection: deletes every matching object; answers with the list deleted.
pub(crate) fn delete_collection(
    w: &mut World,
    rd: &'static ResourceDef,
    ns: Option<&str>,
    sel: &Selectors,
    options: &Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let targets: Vec<Key> = w
        .iter(rd.plural, ns)
        .filter(|(_, s)| sel.matches(&s.obj))
        .map(|(k, _)| k.clone())
        .collect();
    let mut items = Vec::new();
    for k in targets {
        let before = w.get(&k).map(Stored::render);
        match delete(w, rd, &k.namespace, &k.name, options, dry_run) {
            Ok(_) => items.extend(before),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json!({
        "kind": rd.list_kind(),
        "apiVersion": rd.api_version(),
        "metadata": { "resourceVersion": w.rv().to_string() },
        "items": items,
    }))
}

/// Internal create by a controller (full admission; manager `kube-controller-manager`).
pub(crate) fn controller_create(
    w: &mut World,
    plural: &str,
    ns: &str,
    obj: Value,
) -> Result<Value, ApiError> {
    let rd =
        resources::by_plural(plural).ok_or_else(|| ApiError::bad_request("unknown resource"))?;
    create(
        w,
        rd,
        ns,
        obj,
        &WriteOpts::manager("kube-controller-manager"),
    )
}

/// Internal status write by a controller or the kubelet (status subresource ownership);
/// returns whether anything changed.
pub(crate) fn write_status(
    w: &mut World,
    rd: &'static ResourceDef,
    ns: &str,
    name: &str,
    status: Value,
    manager: &str,
) -> bool {
    let k = key(rd, ns, name);
    let Some(stored) = w.get(&k).cloned() else {
        return false;
    };
    if stored.obj.get("status") == Some(&status) {
        return false;
    }
    let mut new = stored.obj.clone();
    new["status"] = status;
    let managed = apply::record_update(
        &stored.managed,
        Some(&stored.obj),
        &new,
        manager,
        &rd.api_version(),
        true,
    );
    w.write(k, new, managed);
    true
}

/// Internal change of the main resource by a controller (no validation); returns whether
/// anything changed.
pub(crate) fn controller_patch(
    w: &mut World,
    rd: &'static ResourceDef,
    ns: &str,
    name: &str,
    manager: &str,
    change: impl FnOnce(&mut Value),
) -> bool {
    let k = key(rd, ns, name);
    let Some(stored) = w.get(&k).cloned() else {
        return false;
    };
    let mut new = stored.obj.clone();
    change(&mut new);
    if new == stored.obj {
        return false;
    }
    let body_of = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    // Pod binding (nodeName) is a subresource write in the real server: no new generation.
    if rd.plural != "pods" && body_of(&new) != body_of(&stored.obj) {
        let generation = stored
            .obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        meta_mut(&mut new).insert("generation".to_owned(), json!(generation + 1));
    }
    let managed = apply::record_update(
        &stored.managed,
        Some(&stored.obj),
        &new,
        manager,
        &rd.api_version(),
        false,
    );
    w.write(k, new, managed);
    true
}
