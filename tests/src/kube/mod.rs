//! A simulated Kubernetes API server for tests: it speaks the real wire protocol over HTTP on
//! 127.0.0.1 (port 0) and writes a kubeconfig pointing at it, so previewd reaches it only
//! through kube-rs, exactly as it would a cluster.
//!
//! It stores namespaces, quotas, limit ranges, secrets, service accounts, config maps, services,
//! pods, events, deployments, replica sets, jobs, network policies, ingresses and role bindings
//! (stored, not enforced); serves get,
//! list, watch, create, server-side apply, merge patch, update and delete with the real Status
//! errors; runs controllers that make Jobs complete, Deployments become Available and pods fail
//! on request ([`Behaviour`]); and lets tests inject faults ([`Fault`]), cut watches and count
//! requests ([`Requests`]). Start one per test with [`KubeSim::start`].
//!
//! Module map: `routes` (HTTP → verb), `verbs` (the verbs over the store), `store` (objects,
//! resourceVersion, history, fan-out), `apply` (field ownership, SSA, merge patch), `validate`,
//! `defaults`, `admission` (LimitRange, ResourceQuota), `watch`, `controllers`, `kubelet`
//! (pod lifecycle, logs, metrics), `events`, `faults`, `status` (Status bodies), `resources`
//! (the resource table and discovery), `selectors`, `quantity`.

mod admission;
mod apply;
mod controllers;
mod defaults;
mod events;
mod faults;
mod kubelet;
mod logstream;
mod quantity;
mod resources;
mod routes;
mod selectors;
mod status;
mod store;
mod validate;
mod verbs;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;

pub use faults::{Fault, FaultKind, Requests, Target};
pub use kubelet::Behaviour;

use faults::Faults;
use store::World;

/// Timings of the simulated cluster. All delays default to zero so tests are fast.
#[derive(Debug, Clone)]
pub struct KubeSimOptions {
    /// How long a deleted namespace stays Terminating before it is gone.
    pub namespace_deletion_delay: Duration,
    /// How long a Job's pod runs before it succeeds (or fails, per its [`Behaviour`]).
    pub job_duration: Duration,
    /// How long after creation a Deployment's pods become Ready (and it Available).
    pub deployment_ready_delay: Duration,
    /// How often watches that asked for bookmarks get one.
    pub watch_bookmark_interval: Duration,
}

impl Default for KubeSimOptions {
    fn default() -> Self {
        Self {
            namespace_deletion_delay: Duration::ZERO,
            job_duration: Duration::ZERO,
            deployment_ready_delay: Duration::ZERO,
            watch_bookmark_interval: Duration::from_secs(1),
        }
    }
}

/// State shared by the HTTP handlers, watches and controllers.
pub(crate) struct Shared {
    pub(crate) opts: KubeSimOptions,
    pub(crate) world: Mutex<World>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) cut: tokio::sync::watch::Sender<u64>,
    /// The sequence of the last log line written ([`KubeSim::write_log`]), for follows.
    pub(crate) log_written: tokio::sync::watch::Sender<u64>,
    /// Followed log streams open now.
    pub(crate) log_follows: std::sync::atomic::AtomicUsize,
    pub(crate) token: String,
    /// Tokens of the extra kubeconfigs ([`KubeSim::kubeconfig_for`]) → their names.
    pub(crate) identities: Mutex<std::collections::HashMap<String, String>>,
    pub(crate) addr: SocketAddr,
}

/// Locks a mutex, ignoring poisoning (a panicked test thread must not hide the state).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Inner {
    shared: Arc<Shared>,
    dir: PathBuf,
    kubeconfig: PathBuf,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.shared.cut.send_modify(|g| *g += 1);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running simulated API server (cheap to clone; stops when the last clone is dropped).
#[derive(Clone)]
pub struct KubeSim {
    inner: Arc<Inner>,
}

/// Namespaces every cluster starts with.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

impl KubeSim {
    /// Starts the server on 127.0.0.1 (a free port) with its controllers, and writes the
    /// kubeconfig.
    pub async fn start(opts: KubeSimOptions) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the kubernetes simulator")?;
        let addr = listener.local_addr()?;
        let (tx, _) = broadcast::channel(4096);
        let wake = Arc::new(Notify::new());
        let mut world = World::new(tx, wake.clone());
        let ns_rd = resources::namespaces();
        for ns in SYSTEM_NAMESPACES {
            verbs::create(
                &mut world,
                ns_rd,
                "",
                json!({ "metadata": { "name": ns } }),
                &verbs::WriteOpts::manager("kube-apiserver"),
            )
            .map_err(|e| anyhow::anyhow!("creating namespace {ns}: {}", e.message))?;
        }
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let token = format!("previewd-sim-{}", uuid::Uuid::new_v4().simple());
        let shared = Arc::new(Shared {
            opts,
            world: Mutex::new(world),
            wake,
            faults: Mutex::new(Faults::default()),
            cut,
            log_written: tokio::sync::watch::channel(0).0,
            log_follows: std::sync::atomic::AtomicUsize::new(0),
            token: token.clone(),
            identities: Mutex::default(),
            addr,
        });

        let dir = std::env::temp_dir().join(format!(
            "previewd-kubesim-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(&format!("http://{addr}"), &token),
        )
        .with_context(|| format!("writing {}", kubeconfig.display()))?;

        let app = routes::router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("kubernetes simulator: server stopped: {e}");
            }
        });
        let controllers = tokio::spawn(controllers::run(shared.clone()));
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                dir,
                kubeconfig,
                tasks: vec![server, controllers],
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.shared().addr)
    }

    /// The kubeconfig (server, a token user, current context set).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.inner.kubeconfig.clone()
    }

    /// Another kubeconfig for the same cluster with a token of its own, so requests sent with
    /// it are told apart ([`Target::client`] is `name`) — a second ServiceAccount, as RBAC sees
    /// it.
    pub fn kubeconfig_for(&self, name: &str) -> anyhow::Result<PathBuf> {
        let token = format!("previewd-sim-{name}-{}", uuid::Uuid::new_v4().simple());
        let path = self.inner.dir.join(format!("kubeconfig-{name}"));
        std::fs::write(&path, kubeconfig_yaml(&self.url(), &token))
            .with_context(|| format!("writing {}", path.display()))?;
        lock(&self.shared().identities).insert(token, name.to_owned());
        Ok(path)
    }

    /// A kube-rs client built from [`KubeSim::kubeconfig_path`], as previewd builds its own.
    pub async fn client(&self) -> anyhow::Result<::kube::Client> {
        let kubeconfig = ::kube::config::Kubeconfig::read_from(self.kubeconfig_path())?;
        let config = ::kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &::kube::config::KubeConfigOptions::default(),
        )
        .await?;
        Ok(::kube::Client::try_from(config)?)
    }

    /// One stored object (`resource` is the plural: `deployments`, `namespaces`, ...), without
    /// `managedFields`.
    pub fn get(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let rd = resources::by_plural(resource)?;
        let w = lock(&self.shared().world);
        let ns = if rd.namespaced {
            namespace.unwrap_or("")
        } else {
            ""
        };
        w.get_obj(rd.plural, ns, name).cloned()
    }

    /// Stored objects of a resource in a namespace (None: all), ordered by namespace and name.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(rd) = resources::by_plural(resource) else {
            return Vec::new();
        };
        let w = lock(&self.shared().world);
        w.objs(rd.plural, if rd.namespaced { namespace } else { None })
    }

    /// The last state of every object of `resource` ever stored in `namespace` (None: all),
    /// deleted ones included — for objects that lived only briefly (a build namespace).
    pub fn ever(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let w = lock(&self.shared().world);
        w.written(resource, namespace)
    }

    /// Names of every namespace, Terminating ones included.
    pub fn namespaces(&self) -> Vec<String> {
        let w = lock(&self.shared().world);
        w.iter("namespaces", None)
            .map(|(k, _)| k.name.clone())
            .collect()
    }

    /// How the pods of a Deployment or Job in `namespace` behave (set before or after it exists).
    pub fn set_behaviour(&self, namespace: &str, workload: &str, behaviour: Behaviour) {
        let mut w = lock(&self.shared().world);
        w.behaviours
            .by_workload
            .insert((namespace.to_owned(), workload.to_owned()), behaviour);
        w.poke();
    }

    /// How every container whose image contains `image_substring` behaves (a workload's own
    /// behaviour wins; the latest image rule wins over older ones).
    pub fn set_behaviour_for_image(&self, image_substring: &str, behaviour: Behaviour) {
        let mut w = lock(&self.shared().world);
        w.behaviours.by_image.retain(|(s, _)| s != image_substring);
        w.behaviours
            .by_image
            .insert(0, (image_substring.to_owned(), behaviour));
        w.poke();
    }

    /// Writes `text` (one line per `\n`) into the log of `container` (None: the pod's first)
    /// of pod `namespace/pod`, as the program in it would; a follow streams it at once.
    pub fn write_log(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        text: &str,
    ) -> anyhow::Result<()> {
        let seq = {
            let mut w = lock(&self.shared().world);
            let (uid, containers) = kubelet::pod_containers(&w, namespace, pod)
                .with_context(|| format!("no pod {namespace}/{pod}"))?;
            let container = match container {
                Some(c) if containers.iter().any(|n| n == c) => c.to_owned(),
                Some(c) => anyhow::bail!("pod {namespace}/{pod} has no container {c}"),
                None => containers
                    .first()
                    .cloned()
                    .with_context(|| format!("pod {namespace}/{pod} has no containers"))?,
            };
            w.logs.write(&uid, &container, text)
        };
        self.shared().log_written.send_replace(seq);
        Ok(())
    }

    /// How many followed log streams (`follow=true`) are open now: one ends when its client
    /// goes away, so a page that stopped following leaves none.
    pub fn open_log_follows(&self) -> usize {
        self.shared()
            .log_follows
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Queues a fault.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared().faults).inject(fault);
    }

    /// Ends every open watch stream now (clients see a clean end of stream and re-watch).
    pub fn cut_watches(&self) {
        self.shared().cut.send_modify(|g| *g += 1);
    }

    /// Makes every resourceVersion handed out so far too old: a watch resuming from one gets a
    /// `410 Expired` ERROR event (as after etcd compaction). Combine with [`KubeSim::cut_watches`].
    pub fn expire_watch_history(&self) {
        lock(&self.shared().world).expire_history();
    }

    /// The request counters so far.
    pub fn requests(&self) -> Requests {
        lock(&self.shared().faults).requests.clone()
    }
}

fn kubeconfig_yaml(server: &str, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: previewd-sim
  cluster:
    server: {server}
users:
- name: previewd-sim
  user:
    token: {token}
contexts:
- name: previewd-sim
  context:
    cluster: previewd-sim
    user: previewd-sim
    namespace: default
current-context: previewd-sim
preferences: {{}}
"
    )
}
