//! What happens to repositories themselves on GitHub, for the tests of previewd's edge cases:
//! a repository renamed (same id, new name; its check runs, comments and deployments go with
//! it, and the old name answers 404 — stricter than GitHub, which redirects, so previewd is
//! shown to use the new name), deleted (with all on it) and created again under the same name
//! (a new id), and
//! pull request numbers beyond 32 bits. Also two deliveries for one pull request sent at the
//! same instant, as GitHub does when an action fires two events.

use serde_json::json;

use super::{
    GitHubSim,
    model::{Delivery, NewPr, Pr},
    state::State,
    webhooks,
};

impl GitHubSim {
    /// Renames repository `old` to `new` (same owner or not), keeping its id and everything on
    /// it.
    pub fn rename_repo(&self, old: &str, new: &str) {
        let mut st = self.shared().lock();
        let (old_key, new_key) = (State::key(old), State::key(new));
        let mut repo = st
            .repos
            .remove(&old_key)
            .unwrap_or_else(|| panic!("github simulator: no repository {old:?}"));
        let (owner, name) = new
            .split_once('/')
            .unwrap_or_else(|| panic!("github simulator: {new:?} is not owner/name"));
        repo.owner = owner.to_owned();
        repo.name = name.to_owned();
        st.repos.insert(new_key.clone(), repo);
        for run in st.check_runs.values_mut().filter(|r| r.repo == old_key) {
            run.repo.clone_from(&new_key);
        }
        for comment in st.comments.values_mut().filter(|c| c.repo == old_key) {
            comment.repo.clone_from(&new_key);
        }
        for deployment in st.deployments.values_mut().filter(|d| d.repo == old_key) {
            deployment.repo.clone_from(&new_key);
        }
    }

    /// Deletes repository `full_name` and creates it again under the same name in the same
    /// installation: a new id, no pull requests, numbering from 1. Returns the new id.
    pub fn recreate_repo(&self, full_name: &str) -> i64 {
        let mut st = self.shared().lock();
        let key = State::key(full_name);
        let old = st
            .repos
            .remove(&key)
            .unwrap_or_else(|| panic!("github simulator: no repository {full_name:?}"));
        // Deleting a repository deletes everything on it.
        st.check_runs.retain(|_, r| r.repo != key);
        st.comments.retain(|_, c| c.repo != key);
        st.deployments.retain(|_, d| d.repo != key);
        let installation = old
            .installation_id
            .unwrap_or_else(|| panic!("github simulator: {full_name} is in no installation"));
        let id = st.add_repo(installation, full_name);
        let repo = st.repo_or_panic(full_name);
        repo.permissions = old.permissions;
        id
    }

    /// The next pull request (or issue) of `repo` gets number `number`.
    pub fn set_next_number(&self, repo: &str, number: u64) {
        self.shared().lock().repo_or_panic(repo).next_number = number;
    }

    /// Opens a pull request carrying `label`, and sends `pull_request.opened` and
    /// `pull_request.labeled` at the same instant (GitHub delivers such pairs concurrently).
    pub async fn open_pr_labelled_at_once(
        &self,
        repo: &str,
        mut new: NewPr,
        label: &str,
        sender: &str,
    ) -> (Pr, Delivery, Delivery) {
        new.labels.push(label.to_owned());
        let (pr, opened_body, labeled_body) = {
            let (pr, opened) = self.render_open_pr(repo, new);
            let labeled = {
                let mut st = self.shared().lock();
                let key = State::key(repo);
                let id = st.label_id(&key, label);
                let r = &st.repos[&key];
                let label_json = super::payloads::label(&self.shared().base_url, r, label, id);
                self.pr_payload(
                    &st,
                    repo,
                    pr.number,
                    "labeled",
                    sender,
                    json!({"label": label_json}),
                )
            };
            (pr, opened, labeled)
        };
        let (opened, labeled) = tokio::join!(
            webhooks::send(self.shared(), "pull_request", opened_body),
            webhooks::send(self.shared(), "pull_request", labeled_body)
        );
        (pr, opened, labeled)
    }

    /// Pushes `sha` and adds `label` at once: `synchronize` and `labeled` sent together.
    pub async fn push_and_label_at_once(
        &self,
        repo: &str,
        number: u64,
        sha: &str,
        label: &str,
        sender: &str,
    ) -> (Delivery, Delivery) {
        let pushed = self.render_push(repo, number, sha);
        let labeled = self.label_event(repo, number, label, sender, true);
        tokio::join!(
            webhooks::send(self.shared(), "pull_request", pushed),
            webhooks::send(self.shared(), "pull_request", labeled)
        )
    }
}
