//! Who may see and do what with a preview: the one authorization check of every page and action
//! (the dashboard's now; the REST API's and MCP's use the same [`Access::check`]).
//!
//! - **Operators** (the `OPERATORS` logins, and the active members of the teams it names, asked
//!   of GitHub with the organization's installation token) see and act on every preview.
//! - Anyone else **sees** the previews of exactly the repositories they can reach through the
//!   App's installations, as GitHub lists them for their own token (`GET /user/installations`
//!   and each installation's repositories). A preview outside them does not exist for them: the
//!   answer is *not found*, never *forbidden*, so its existence does not leak.
//! - They **act** (delete, retry, redeploy, extend) where they have write permission, asked of
//!   GitHub with the installation's token — the same question the PR buttons and commands ask
//!   in the worker (`GET /repos/{o}/{r}/collaborators/{login}/permission`).
//!
//! Both answers are cached for [`ACCESS_TTL`] per person (per person and repository for write
//! permission): a change on GitHub shows within that time. Signing out or a revoked
//! authorization forgets them at once ([`Access::forget`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use previewd_entity::repository;

use crate::github::{GitHub, GitHubError, RepoName};

/// How long what GitHub said about a person's reach and write permission is reused.
pub const ACCESS_TTL: Duration = Duration::from_secs(60);

/// The person acting, with what they may reach.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: i64,
    pub login: String,
    pub operator: bool,
    /// Ids of the repositories they can reach (sorted); ignored for operators.
    pub repositories: Arc<Vec<i64>>,
}

impl Actor {
    /// Whether they see previews of repository `id`.
    pub fn sees(&self, repository_id: i64) -> bool {
        self.operator || self.repositories.binary_search(&repository_id).is_ok()
    }

    /// The repositories a listing is limited to: `None` for operators (every one).
    pub fn visible(&self) -> Option<Vec<i64>> {
        (!self.operator).then(|| self.repositories.as_ref().clone())
    }
}

/// What an actor asks to do with a preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    View,
    Delete,
    Retry,
    Redeploy,
    Extend,
}

impl Verb {
    /// Verbs that change something (write permission needed).
    pub const ACTIONS: [Self; 4] = [Self::Delete, Self::Retry, Self::Redeploy, Self::Extend];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Delete => "delete",
            Self::Retry => "retry",
            Self::Redeploy => "redeploy",
            Self::Extend => "extend",
        }
    }
}

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// Not visible to them: answered as if it did not exist.
    #[error("no such preview")]
    NotFound,
    /// Visible, but they lack write permission.
    #[error("you need write permission on {repository} to {verb}")]
    Forbidden {
        repository: String,
        verb: &'static str,
    },
    /// GitHub could not be asked.
    #[error("GitHub could not tell your permission: {0}")]
    Unavailable(#[from] GitHubError),
}

/// A person's reach as GitHub listed it, and when.
type Reach = (Instant, Arc<Vec<i64>>);

/// The cached answers, shared by every request of the process.
#[derive(Debug)]
pub struct Access {
    github: GitHub,
    reach: Mutex<HashMap<i64, Reach>>,
    writers: Mutex<HashMap<(i64, String), (Instant, bool)>>,
    /// Lowercase login → (when, member of an operators' team).
    team_operators: Mutex<HashMap<String, (Instant, bool)>>,
    /// A token holder's reach, from the installations' view of their permission.
    token_reach: Mutex<HashMap<i64, Reach>>,
}

/// An operators' team: its organization's installation, the organization, the team's slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorTeam {
    pub installation: i64,
    pub org: String,
    pub team: String,
}

impl Access {
    pub fn new(github: GitHub) -> Self {
        Self {
            github,
            reach: Mutex::default(),
            writers: Mutex::default(),
            team_operators: Mutex::default(),
            token_reach: Mutex::default(),
        }
    }

    /// Whether `login` is an active member of any of `teams` (cached [`ACCESS_TTL`]). A team
    /// GitHub cannot be asked about counts as not: the person is then shown what they reach
    /// themselves, never more.
    pub async fn in_operator_team(&self, login: &str, teams: &[OperatorTeam]) -> bool {
        if teams.is_empty() {
            return false;
        }
        let key = login.to_ascii_lowercase();
        let cached = self
            .team_operators
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .filter(|(at, _)| at.elapsed() < ACCESS_TTL)
            .map(|(_, member)| *member);
        if let Some(member) = cached {
            return member;
        }
        let mut member = false;
        for t in teams {
            match self
                .github
                .team_member(t.installation, &t.org, &t.team, login)
                .await
            {
                Ok(true) => {
                    member = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        team = %format!("{}/{}", t.org, t.team),
                        "could not ask GitHub for an operators' team's members (does the App have members: read?)"
                    );
                }
            }
        }
        self.team_operators
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (Instant::now(), member));
        member
    }

    /// The actor for a signed-in person: their reach from the cache, else from GitHub with the
    /// token `token` gives (called only then, so a token is refreshed only when needed).
    pub async fn actor(
        &self,
        user_id: i64,
        login: &str,
        operator: bool,
        token: impl AsyncFnOnce() -> Result<secrecy::SecretString, GitHubError>,
    ) -> Result<Actor, GitHubError> {
        let cached = {
            let reach = self.reach.lock().unwrap_or_else(PoisonError::into_inner);
            reach
                .get(&user_id)
                .filter(|(at, _)| at.elapsed() < ACCESS_TTL)
                .map(|(_, repos)| Arc::clone(repos))
        };
        let repositories = match cached {
            Some(repos) => repos,
            None if operator => Arc::default(),
            None => {
                let token = token().await?;
                let repos = Arc::new(self.github.person_repositories(&token).await?);
                self.reach
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(user_id, (Instant::now(), Arc::clone(&repos)));
                repos
            }
        };
        Ok(Actor {
            user_id,
            login: login.to_owned(),
            operator,
            repositories,
        })
    }

    /// The actor for a person presenting an API token. There is no GitHub token of theirs to
    /// list their reach with, so it is the repositories among `repositories` on which the
    /// installation says they have any permission (read or more), each asked of GitHub — the
    /// same question as the write check, whose answer it also caches. Both are kept
    /// [`ACCESS_TTL`], so a token carries the person's access as it is now, never a copy.
    pub async fn actor_for_token(
        &self,
        user_id: i64,
        login: &str,
        operator: bool,
        repositories: &[repository::Model],
    ) -> Result<Actor, GitHubError> {
        if operator {
            return Ok(Actor {
                user_id,
                login: login.to_owned(),
                operator,
                repositories: Arc::default(),
            });
        }
        let cached = self
            .token_reach
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&user_id)
            .filter(|(at, _)| at.elapsed() < ACCESS_TTL)
            .map(|(_, repos)| Arc::clone(repos));
        let repositories = match cached {
            Some(repos) => repos,
            None => {
                let mut reach = Vec::new();
                let lower = login.to_ascii_lowercase();
                for repo in repositories {
                    let Some(name) = RepoName::parse(&repo.full_name) else {
                        continue;
                    };
                    let permission = self
                        .github
                        .permission(repo.installation_id, &name, login)
                        .await?;
                    self.writers
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(
                            (repo.id, lower.clone()),
                            (Instant::now(), permission.can_write()),
                        );
                    if permission != crate::github::api::Permission::None {
                        reach.push(repo.id);
                    }
                }
                reach.sort_unstable();
                let reach = Arc::new(reach);
                self.token_reach
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(user_id, (Instant::now(), Arc::clone(&reach)));
                reach
            }
        };
        Ok(Actor {
            user_id,
            login: login.to_owned(),
            operator,
            repositories,
        })
    }

    /// Whether `actor` may `verb` a preview of `repository`.
    pub async fn check(
        &self,
        actor: &Actor,
        repository: &repository::Model,
        verb: Verb,
    ) -> Result<(), Denied> {
        if !actor.sees(repository.id) {
            return Err(Denied::NotFound);
        }
        if verb == Verb::View || actor.operator {
            return Ok(());
        }
        if self.writes(actor, repository).await? {
            Ok(())
        } else {
            Err(Denied::Forbidden {
                repository: repository.full_name.clone(),
                verb: verb.as_str(),
            })
        }
    }

    /// Whether `actor` has write permission on `repository` (the installation's view).
    pub async fn writes(
        &self,
        actor: &Actor,
        repository: &repository::Model,
    ) -> Result<bool, GitHubError> {
        if actor.operator {
            return Ok(true);
        }
        let key = (repository.id, actor.login.to_ascii_lowercase());
        let cached = self
            .writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .filter(|(at, _)| at.elapsed() < ACCESS_TTL)
            .map(|(_, w)| *w);
        if let Some(writes) = cached {
            return Ok(writes);
        }
        let Some(name) = RepoName::parse(&repository.full_name) else {
            return Ok(false);
        };
        let writes = self
            .github
            .permission(repository.installation_id, &name, &actor.login)
            .await?
            .can_write();
        self.writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (Instant::now(), writes));
        Ok(writes)
    }

    /// Forgets what is cached about a person (signed out, authorization revoked).
    pub fn forget(&self, user_id: i64, login: &str) {
        self.reach
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&user_id);
        let login = login.to_ascii_lowercase();
        self.writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(_, l), _| *l != login);
        self.team_operators
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&login);
        self.token_reach
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&user_id);
    }
}
