//! Server-side apply and patches: field ownership per manager (`managedFields`), conflict
//! detection, pruning of fields a manager stopped applying, JSON merge patch, and the
//! ownership bookkeeping for plain updates.
//!
//! Simplification, stated once: lists are owned atomically (the real server merges some lists by
//! key, e.g. containers by name). Maps merge key by key, so labels, annotations, `data` and
//! `spec` fields are owned individually — which is what conflicts between managers hinge on.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::store::{FieldPath, ManagedEntry, Operation, Stored, now_string};

/// Metadata fields a client may own; everything else in `metadata` is the server's.
const USER_METADATA: &[&str] = &["labels", "annotations", "ownerReferences", "finalizers"];

/// The part of an object its managers own: for the main resource everything but `apiVersion`,
/// `kind`, server-set metadata and `status`; for the `status` subresource only `status`.
pub(crate) fn owned_view(obj: &Value, status_subresource: bool) -> Value {
    let mut out = Map::new();
    let Some(map) = obj.as_object() else {
        return Value::Object(out);
    };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "status" if !status_subresource => {}
            "status" => {
                out.insert(k.clone(), v.clone());
            }
            _ if status_subresource => {}
            "metadata" => {
                let mut meta = Map::new();
                if let Some(m) = v.as_object() {
                    for (mk, mv) in m {
                        if USER_METADATA.contains(&mk.as_str()) {
                            meta.insert(mk.clone(), mv.clone());
                        }
                    }
                }
                if !meta.is_empty() {
                    out.insert(k.clone(), Value::Object(meta));
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Drops `null` members recursively (an applied `null` means "not set").
pub(crate) fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Leaf paths of a value: scalars, lists and empty maps.
pub(crate) fn leaves(v: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    path.push(k.clone());
                    walk(x, path, out);
                    path.pop();
                }
            }
            _ if !path.is_empty() => {
                out.insert(path.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

pub(crate) fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, seg| cur.get(seg))
}

/// Removes the field at `path`, then any maps it leaves empty (below the top level).
pub(crate) fn remove_path(v: &mut Value, path: &[String]) {
    fn go(v: &mut Value, path: &[String], depth: usize) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let Some(map) = v.as_object_mut() else {
            return;
        };
        if rest.is_empty() {
            map.remove(first);
            return;
        }
        if let Some(child) = map.get_mut(first) {
            go(child, rest, depth + 1);
            if depth >= 1 && child.as_object().is_some_and(Map::is_empty) {
                map.remove(first);
            }
        }
    }
    go(v, path, 0);
}

/// Deep merge: maps merge key by key, anything else replaces.
pub(crate) fn merge_into(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, pv) in p {
                match t.get_mut(k) {
                    Some(tv) if tv.is_object() && pv.is_object() => merge_into(tv, pv),
                    _ => {
                        t.insert(k.clone(), pv.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// RFC 7386 JSON merge patch (`null` deletes).
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, pv) in p {
            if pv.is_null() {
                t.remove(k);
            } else {
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                merge_patch(entry, pv);
            }
        }
    }
}

/// `(manager, field)` pairs an apply collided with.
pub(crate) type Conflicts = Vec<(String, String)>;

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Whether an applied leaf touches an owned field: the same path, or one inside the other —
/// except an applied empty map, which claims the map but says nothing about its keys.
fn collides(owned: &[String], leaf: &[String], config: &Value) -> bool {
    if leaf.len() < owned.len() && owned.starts_with(leaf) {
        return !get_path(config, leaf).is_some_and(Value::is_object);
    }
    overlaps(owned, leaf)
}

/// `.spec.replicas`
pub(crate) fn path_string(p: &[String]) -> String {
    p.iter().map(|s| format!(".{s}")).collect()
}

/// Applies `config` (an [`owned_view`], nulls stripped) as `manager`: returns the merged object
/// and new ownership, or the conflicts `(manager, field)` when another manager owns a field
/// the config changes and `force` is off.
pub(crate) fn apply(
    current: &Stored,
    config: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    status_subresource: bool,
) -> Result<(Value, Vec<ManagedEntry>), Conflicts> {
    let subresource = status_subresource.then(|| "status".to_owned());
    let new_leaves = leaves(config);
    let cur_view = owned_view(&current.obj, status_subresource);

    let mut conflicts: Vec<(String, String)> = Vec::new();
    for entry in current
        .managed
        .iter()
        .filter(|m| m.manager != manager && m.subresource == subresource)
    {
        for owned in &entry.fields {
            for leaf in &new_leaves {
                if !collides(owned, leaf, config) {
                    continue;
                }
                let longer = if owned.len() >= leaf.len() {
                    owned
                } else {
                    leaf
                };
                if get_path(&cur_view, longer) != get_path(config, longer) {
                    let c = (entry.manager.clone(), path_string(owned));
                    if !conflicts.contains(&c) {
                        conflicts.push(c);
                    }
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }

    let mut obj = current.obj.clone();
    let previously: BTreeSet<FieldPath> = current
        .managed
        .iter()
        .find(|m| {
            m.manager == manager && m.operation == Operation::Apply && m.subresource == subresource
        })
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    for gone in previously.difference(&new_leaves) {
        let shared = current.managed.iter().any(|m| {
            !(m.manager == manager && m.operation == Operation::Apply)
                && m.fields.iter().any(|f| overlaps(f, gone))
        });
        if !shared {
            remove_path(&mut obj, gone);
        }
    }
    merge_into(&mut obj, config);

    let new_view = owned_view(&obj, status_subresource);
    let mut managed: Vec<ManagedEntry> = Vec::new();
    for entry in &current.managed {
        if entry.manager == manager
            && entry.operation == Operation::Apply
            && entry.subresource == subresource
        {
            continue;
        }
        let mut e = entry.clone();
        if e.subresource == subresource {
            e.fields.retain(|owned| {
                !new_leaves.iter().any(|leaf| {
                    collides(owned, leaf, config)
                        && get_path(&cur_view, owned) != get_path(&new_view, owned)
                })
            });
        }
        if !e.fields.is_empty() {
            managed.push(e);
        }
    }
    managed.push(ManagedEntry {
        manager: manager.to_owned(),
        operation: Operation::Apply,
        api_version: api_version.to_owned(),
        time: now_string(),
        subresource,
        fields: new_leaves,
    });
    Ok((obj, managed))
}

/// Ownership after a create, update or merge patch by `manager`: it takes the fields it changed;
/// others lose them; removed fields leave everyone.
pub(crate) fn record_update(
    managed: &[ManagedEntry],
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    api_version: &str,
    status_subresource: bool,
) -> Vec<ManagedEntry> {
    let subresource = status_subresource.then(|| "status".to_owned());
    let new_view = owned_view(new, status_subresource);
    let new_leaves = leaves(&new_view);
    let (changed, removed): (BTreeSet<FieldPath>, BTreeSet<FieldPath>) = match old {
        None => (new_leaves.clone(), BTreeSet::new()),
        Some(old) => {
            let old_view = owned_view(old, status_subresource);
            let old_leaves = leaves(&old_view);
            let changed = new_leaves
                .iter()
                .filter(|l| get_path(&old_view, l) != get_path(&new_view, l))
                .cloned()
                .collect();
            let removed = old_leaves.difference(&new_leaves).cloned().collect();
            (changed, removed)
        }
    };
    if changed.is_empty() && removed.is_empty() {
        return managed.to_vec();
    }
    let mut out: Vec<ManagedEntry> = Vec::new();
    let mut mine: Option<ManagedEntry> = None;
    for entry in managed {
        let mut e = entry.clone();
        if e.subresource == subresource {
            e.fields.retain(|f| {
                let gone = removed.iter().any(|r| overlaps(f, r));
                let taken = e.manager != manager && changed.iter().any(|c| overlaps(f, c));
                !gone && !taken
            });
        }
        if e.manager == manager && e.operation == Operation::Update && e.subresource == subresource
        {
            mine = Some(e);
            continue;
        }
        if !e.fields.is_empty() {
            out.push(e);
        }
    }
    let mut mine = mine.unwrap_or_else(|| ManagedEntry {
        manager: manager.to_owned(),
        operation: Operation::Update,
        api_version: api_version.to_owned(),
        time: String::new(),
        subresource,
        fields: BTreeSet::new(),
    });
    mine.fields.extend(changed);
    mine.time = now_string();
    if !mine.fields.is_empty() {
        out.push(mine);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(obj: Value, manager: &str) -> Stored {
        let managed = record_update(&[], None, &obj, manager, "v1", false);
        Stored { obj, managed }
    }

    #[test]
    fn apply_conflicts_and_prunes() {
        let cur = stored(
            json!({"metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}}),
            "kubectl",
        );
        // Changing a field another manager owns conflicts...
        let cfg = json!({"data": {"x": "9"}});
        let err = apply(&cur, &cfg, "previewd", false, "v1", false).unwrap_err();
        assert_eq!(err, vec![("kubectl".to_owned(), ".data.x".to_owned())]);
        // ...unless forced, which moves ownership.
        let (obj, managed) = apply(&cur, &cfg, "previewd", true, "v1", false).unwrap();
        assert_eq!(obj["data"]["x"], "9");
        let cur = Stored { obj, managed };
        // Dropping a field from the config prunes it when nobody else owns it.
        let (obj, _) = apply(&cur, &json!({"data": {}}), "previewd", false, "v1", false).unwrap();
        assert!(obj["data"].get("x").is_none());
        assert_eq!(obj["data"]["y"], "2");
    }

    #[test]
    fn merge_patch_deletes_nulls() {
        let mut v = json!({"a": {"b": 1, "c": 2}});
        merge_patch(&mut v, &json!({"a": {"b": null, "d": 3}}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}}));
    }
}
