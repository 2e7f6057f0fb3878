//! What a test makes happen on GitHub: pull requests opened, pushed, closed, reopened, labelled;
//! comments; "Re-run" and check-run buttons; installations changing; pings; raw and repeated
//! deliveries. Each changes the state first, then renders the webhook payload from the state
//! (as GitHub would), signs and sends it, and returns the recorded delivery.

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::{
    GitHubSim,
    encoding::{random_hex, timestamp},
    model::{Delivery, NewPr, Pr},
    payloads::{self, envelope},
    state::{EVENTS, HOOK_ID, PrRec, State},
    webhooks,
};

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

impl GitHubSim {
    /// A `pull_request` payload for `repo#number` with `action` and extra top-level fields.
    pub(super) fn pr_payload(
        &self,
        st: &State,
        repo: &str,
        number: u64,
        action: &str,
        sender: &str,
        extra: Value,
    ) -> Vec<u8> {
        let api = &self.shared().base_url;
        let r = st
            .repo(repo)
            .unwrap_or_else(|| panic!("github simulator: no repository {repo:?}"));
        let pr = &r.prs[&number];
        let mut m = obj(extra);
        m.insert("action".into(), json!(action));
        m.insert("number".into(), json!(number));
        m.insert(
            "pull_request".into(),
            payloads::pull_request(api, st, r, pr),
        );
        bytes(&envelope(api, r, sender, m))
    }

    /// Opens a pull request in the simulator's state without sending its webhook (a pull
    /// request previewd missed, as the reconciler must find it).
    pub fn add_pr_quietly(&self, repo: &str, new: NewPr) -> Pr {
        let mut st = self.shared().lock();
        let number = insert_pr(&mut st, repo, new);
        let r = st.repo_or_panic(repo);
        r.prs[&number].snapshot(r)
    }

    /// Opens a pull request (`pull_request.opened`).
    pub async fn open_pr(&self, repo: &str, new: NewPr) -> (Pr, Delivery) {
        let (snapshot, body) = self.render_open_pr(repo, new);
        let delivery = webhooks::send(self.shared(), "pull_request", body).await;
        (snapshot, delivery)
    }

    /// Opens a pull request in the state and renders its `pull_request.opened` payload.
    pub(super) fn render_open_pr(&self, repo: &str, new: NewPr) -> (Pr, Vec<u8>) {
        {
            let mut st = self.shared().lock();
            let author = new.author.clone();
            let number = insert_pr(&mut st, repo, new);
            let snapshot = {
                let r = st.repo_or_panic(repo);
                r.prs[&number].snapshot(r)
            };
            let body = self.pr_payload(&st, repo, number, "opened", &author, json!({}));
            (snapshot, body)
        }
    }

    /// Pushes `new_sha` to the pull request's head (`pull_request.synchronize`).
    pub async fn push(&self, repo: &str, number: u64, new_sha: &str) -> Delivery {
        let body = self.render_push(repo, number, new_sha);
        webhooks::send(self.shared(), "pull_request", body).await
    }

    /// Moves the pull request's head in the state and renders its `synchronize` payload.
    pub(super) fn render_push(&self, repo: &str, number: u64, new_sha: &str) -> Vec<u8> {
        {
            let mut st = self.shared().lock();
            let r = st.repo_or_panic(repo);
            r.known_refs.insert(new_sha.to_owned());
            let pr = r
                .prs
                .get_mut(&number)
                .unwrap_or_else(|| panic!("github simulator: no pull request {repo}#{number}"));
            let before = std::mem::replace(&mut pr.head_sha, new_sha.to_owned());
            pr.updated_at = Utc::now();
            let sender = pr.author.clone();
            self.pr_payload(
                &st,
                repo,
                number,
                "synchronize",
                &sender,
                json!({"before": before, "after": new_sha}),
            )
        }
    }

    /// Closes the pull request, merged or not (`pull_request.closed`). A merge moves the default
    /// branch to the merge commit.
    pub async fn close_pr(&self, repo: &str, number: u64, merged: bool) -> Delivery {
        let body = {
            let mut st = self.shared().lock();
            let r = st.repo_or_panic(repo);
            let now = Utc::now();
            let merge_sha = merged.then(|| random_hex(40));
            if let Some(sha) = &merge_sha {
                r.default_sha = sha.clone();
                r.known_refs.insert(sha.clone());
            }
            let pr = r
                .prs
                .get_mut(&number)
                .unwrap_or_else(|| panic!("github simulator: no pull request {repo}#{number}"));
            pr.state = "closed".to_owned();
            pr.closed_at = Some(now);
            pr.updated_at = now;
            if merged {
                pr.merged = true;
                pr.merged_at = Some(now);
                pr.merge_commit_sha = merge_sha;
            }
            let sender = pr.author.clone();
            self.pr_payload(&st, repo, number, "closed", &sender, json!({}))
        };
        webhooks::send(self.shared(), "pull_request", body).await
    }

    /// Reopens a closed, unmerged pull request (`pull_request.reopened`).
    pub async fn reopen_pr(&self, repo: &str, number: u64) -> Delivery {
        let body = {
            let mut st = self.shared().lock();
            let pr = st.pr_or_panic(repo, number);
            assert!(
                !pr.merged,
                "github simulator: a merged pull request cannot be reopened"
            );
            pr.state = "open".to_owned();
            pr.closed_at = None;
            pr.updated_at = Utc::now();
            let sender = pr.author.clone();
            self.pr_payload(&st, repo, number, "reopened", &sender, json!({}))
        };
        webhooks::send(self.shared(), "pull_request", body).await
    }

    pub(super) fn label_event(
        &self,
        repo: &str,
        number: u64,
        label: &str,
        sender: &str,
        add: bool,
    ) -> Vec<u8> {
        let mut st = self.shared().lock();
        let key = State::key(repo);
        st.repo_or_panic(repo);
        let id = st.label_id(&key, label);
        let pr = st.pr_or_panic(repo, number);
        if add {
            if !pr.labels.iter().any(|l| l == label) {
                pr.labels.push(label.to_owned());
            }
        } else {
            pr.labels.retain(|l| l != label);
        }
        pr.updated_at = Utc::now();
        let r = &st.repos[&key];
        let label_json = payloads::label(&self.shared().base_url, r, label, id);
        let action = if add { "labeled" } else { "unlabeled" };
        self.pr_payload(
            &st,
            repo,
            number,
            action,
            sender,
            json!({"label": label_json}),
        )
    }

    /// `sender` adds a label (`pull_request.labeled`).
    pub async fn add_label(&self, repo: &str, number: u64, label: &str, sender: &str) -> Delivery {
        let body = self.label_event(repo, number, label, sender, true);
        webhooks::send(self.shared(), "pull_request", body).await
    }

    /// `sender` removes a label (`pull_request.unlabeled`).
    pub async fn remove_label(
        &self,
        repo: &str,
        number: u64,
        label: &str,
        sender: &str,
    ) -> Delivery {
        let body = self.label_event(repo, number, label, sender, false);
        webhooks::send(self.shared(), "pull_request", body).await
    }

    /// `sender` comments on the pull request (`issue_comment.created`).
    pub async fn comment(&self, repo: &str, number: u64, sender: &str, body: &str) -> Delivery {
        let payload = {
            let mut st = self.shared().lock();
            let key = State::key(repo);
            st.pr_or_panic(repo, number);
            let id = st.ids.comment();
            let now = Utc::now();
            st.comments.insert(
                id,
                super::state::CommentRec {
                    repo: key.clone(),
                    number,
                    comment: super::model::Comment {
                        id,
                        body: body.to_owned(),
                        user_login: sender.to_owned(),
                        created_at: now,
                        updated_at: now,
                    },
                },
            );
            let api = &self.shared().base_url;
            let r = &st.repos[&key];
            let m = obj(json!({
                "action": "created",
                "issue": payloads::issue(api, &st, r, &r.prs[&number]),
                "comment": payloads::comment(api, r, &st.comments[&id]),
            }));
            bytes(&envelope(api, r, sender, m))
        };
        webhooks::send(self.shared(), "issue_comment", payload).await
    }

    fn check_run_event(
        &self,
        repo: &str,
        check_run_id: i64,
        sender: &str,
        action: &str,
        extra: Value,
    ) -> Vec<u8> {
        let st = self.shared().lock();
        let key = State::key(repo);
        let c = st
            .check_runs
            .get(&check_run_id)
            .filter(|c| c.repo == key)
            .unwrap_or_else(|| panic!("github simulator: no check run {check_run_id} in {repo}"));
        let api = &self.shared().base_url;
        let r = &st.repos[&key];
        let mut m = obj(extra);
        m.insert("action".into(), json!(action));
        m.insert(
            "check_run".into(),
            payloads::check_run(self.shared(), &st, r, c),
        );
        bytes(&envelope(api, r, sender, m))
    }

    /// `sender` presses "Re-run" on a check run (`check_run.rerequested`).
    pub async fn rerequest_check_run(
        &self,
        repo: &str,
        check_run_id: i64,
        sender: &str,
    ) -> Delivery {
        let body = self.check_run_event(repo, check_run_id, sender, "rerequested", json!({}));
        webhooks::send(self.shared(), "check_run", body).await
    }

    /// `sender` presses a check run's button (`check_run.requested_action`).
    pub async fn request_action(
        &self,
        repo: &str,
        check_run_id: i64,
        identifier: &str,
        sender: &str,
    ) -> Delivery {
        let extra = json!({"requested_action": {"identifier": identifier}});
        let body = self.check_run_event(repo, check_run_id, sender, "requested_action", extra);
        webhooks::send(self.shared(), "check_run", body).await
    }

    /// `sender` presses "Re-run all checks" for a commit (`check_suite.rerequested`).
    pub async fn rerequest_check_suite(
        &self,
        repo: &str,
        head_sha: &str,
        sender: &str,
    ) -> Delivery {
        let body = {
            let mut st = self.shared().lock();
            let key = State::key(repo);
            st.repo_or_panic(repo);
            let suite = st.suite_id(&key, head_sha);
            let api = &self.shared().base_url;
            let r = &st.repos[&key];
            let m = obj(json!({
                "action": "rerequested",
                "check_suite": payloads::check_suite(self.shared(), &st, r, suite, head_sha),
            }));
            bytes(&envelope(api, r, sender, m))
        };
        webhooks::send(self.shared(), "check_suite", body).await
    }

    /// The installation is created, deleted, suspended or unsuspended (`installation.*`). The
    /// state follows: a deleted installation's tokens stop working and it mints no more; a
    /// suspended one answers 403.
    pub async fn installation_event(&self, installation_id: i64, action: &str) -> Delivery {
        assert!(
            [
                "created",
                "deleted",
                "suspend",
                "unsuspend",
                "new_permissions_accepted"
            ]
            .contains(&action),
            "github simulator: unknown installation action {action:?}"
        );
        let body = {
            let mut st = self.shared().lock();
            let inst = st
                .installations
                .get_mut(&installation_id)
                .unwrap_or_else(|| panic!("github simulator: no installation {installation_id}"));
            match action {
                "created" => {
                    inst.deleted = false;
                    inst.suspended = false;
                }
                "deleted" => inst.deleted = true,
                "suspend" => {
                    inst.suspended = true;
                    inst.suspended_at = Utc::now();
                }
                "unsuspend" => inst.suspended = false,
                _ => {}
            }
            let account = inst.account.clone();
            let api = &self.shared().base_url;
            let repos: Vec<Value> = st
                .repos
                .values()
                .filter(|r| r.installation_id == Some(installation_id))
                .map(payloads::repo_short)
                .collect();
            bytes(&json!({
                "action": action,
                "installation": payloads::installation(self.shared(), &st.installations[&installation_id]),
                "repositories": repos,
                "requester": null,
                "sender": payloads::user(api, &format!("{account}-admin")),
            }))
        };
        webhooks::send(self.shared(), "installation", body).await
    }

    /// Repositories are added to or removed from the installation
    /// (`installation_repositories.added` if any were added, else `.removed`). Added repositories
    /// are created if new; removed ones stay but belong to no installation.
    pub async fn installation_repositories_event(
        &self,
        installation_id: i64,
        added: &[&str],
        removed: &[&str],
    ) -> Delivery {
        let body = {
            let mut st = self.shared().lock();
            assert!(
                st.installations.contains_key(&installation_id),
                "github simulator: no installation {installation_id}"
            );
            for name in added {
                st.add_repo(installation_id, name);
            }
            for name in removed {
                if let Some(r) = st.repos.get_mut(&State::key(name)) {
                    r.installation_id = None;
                }
            }
            let short = |names: &[&str]| -> Vec<Value> {
                names
                    .iter()
                    .filter_map(|n| st.repo(n))
                    .map(payloads::repo_short)
                    .collect()
            };
            let inst = &st.installations[&installation_id];
            let api = &self.shared().base_url;
            bytes(&json!({
                "action": if added.is_empty() { "removed" } else { "added" },
                "installation": payloads::installation(self.shared(), inst),
                "repository_selection": "selected",
                "repositories_added": short(added),
                "repositories_removed": short(removed),
                "requester": null,
                "sender": payloads::user(api, &format!("{}-admin", inst.account)),
            }))
        };
        webhooks::send(self.shared(), "installation_repositories", body).await
    }

    /// The App's webhook is pinged (`ping`).
    pub async fn ping(&self) -> Delivery {
        let body = {
            let st = self.shared().lock();
            let api = &self.shared().base_url;
            let now = timestamp(Utc::now());
            bytes(&json!({
                "zen": "Keep it logically awesome.",
                "hook_id": HOOK_ID,
                "hook": {
                    "type": "App",
                    "id": HOOK_ID,
                    "name": "web",
                    "active": true,
                    "events": EVENTS,
                    "config": {
                        "content_type": "json",
                        "insecure_ssl": "0",
                        "url": st.webhook_url.clone().unwrap_or_default(),
                    },
                    "updated_at": now,
                    "created_at": now,
                    "app_id": self.shared().opts.app_id,
                    "deliveries_url": format!("{api}/app/hook/deliveries"),
                },
            }))
        };
        webhooks::send(self.shared(), "ping", body).await
    }

    /// `login` revokes their authorization of the App on their GitHub settings page: their
    /// user-to-server and refresh tokens stop working and GitHub sends
    /// `github_app_authorization.revoked`.
    pub async fn revoke_authorization(&self, login: &str) -> Delivery {
        let body = {
            let mut st = self.shared().lock();
            let id = super::encoding::user_id(login);
            st.user_tokens.retain(|_, t| t.user_id != id);
            st.refresh_tokens.retain(|_, t| t.user_id != id);
            bytes(&json!({
                "action": "revoked",
                "sender": payloads::user(&self.shared().base_url, login),
            }))
        };
        webhooks::send(self.shared(), "github_app_authorization", body).await
    }

    /// Signs and sends arbitrary bytes as `event` (for malformed, unknown or hand-made payloads).
    pub async fn send_raw(&self, event: &str, body: Vec<u8>) -> Delivery {
        webhooks::send(self.shared(), event, body).await
    }

    /// Sends delivery `delivery_id` again: a new delivery with the same GUID and
    /// `redelivery: true` (panics if there is no such delivery).
    pub async fn redeliver(&self, delivery_id: i64) -> Delivery {
        webhooks::redeliver(self.shared(), delivery_id)
            .await
            .unwrap_or_else(|| panic!("github simulator: no delivery {delivery_id}"))
    }
}

/// Adds the pull request to the state; returns its number.
fn insert_pr(st: &mut State, repo: &str, new: NewPr) -> u64 {
    let key = State::key(repo);
    st.repo_or_panic(repo);
    let id = st.ids.pr();
    let issue_id = st.ids.issue();
    let fork_repo_id = if new.from_fork { st.ids.repo() } else { 0 };
    for label in &new.labels {
        st.label_id(&key, label);
    }
    let r = st.repo_or_panic(repo);
    let number = r.next_number;
    r.next_number += 1;
    let base_sha = r
        .branch_sha(&new.base_ref)
        .unwrap_or_else(|| r.default_sha.clone());
    r.known_refs.insert(new.head_sha.clone());
    if !new.from_fork {
        r.known_refs.insert(new.head_ref.clone());
    }
    let now = Utc::now();
    r.prs.insert(
        number,
        PrRec {
            id,
            issue_id,
            number,
            title: new.title,
            author: new.author,
            state: "open".to_owned(),
            draft: new.draft,
            merged: false,
            head_ref: new.head_ref,
            head_sha: new.head_sha,
            base_ref: new.base_ref,
            base_sha,
            from_fork: new.from_fork,
            fork_repo_id,
            labels: new.labels,
            created_at: now,
            updated_at: now,
            closed_at: None,
            merged_at: None,
            merge_commit_sha: None,
        },
    );
    number
}
