//! Bounded mutation fuzzing of the code that reads untrusted input: webhook payloads (every
//! event previewd reads), `.github/preview.yml`, resource quantities, namespace naming and the
//! sanitizer. Each target gets a fixed number of cases mutated from fixed seeds by a fixed
//! pseudo-random sequence, so a run is bounded and any failure reproduces exactly; the property
//! is always the same — no panic, and every refusal says something. The webhook target is
//! seeded twice: with minimal payloads (every field previewd reads, nothing else) and with
//! whole deliveries of every event it reads, as the GitHub simulator renders them.

use previewd::{
    cluster::naming::{is_dns1123_label, namespace_name},
    config::GithubConfig,
    github::{
        GitHub, RepoName,
        api::{CheckRunReport, CheckStatus},
        webhook::{HANDLED_EVENTS, parse},
    },
    previews::repo_config::{self, Limits},
    sanitize::sanitize,
    units::Quantity,
};
use previewd_tests::github::{GitHubSim, GitHubSimOptions, NewPr};
use secrecy::SecretString;
use serde_json::json;

/// Cases per target: a few seconds in a debug build on two cores.
const CASES: usize = 4000;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }
}

/// Pieces that tend to break parsers: JSON and YAML syntax, big and odd numbers, odd text.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"\\u0000",
    b"\xff\xfe",
    b"[[[[[[[[[[[[[[[[",
    b"\n",
    b"\t",
    b"&a",
    b"*a",
    b"!!binary",
    b"---",
    b"..",
    b"/",
    b"\xe2\x80\xae",
    b"0x",
    b"Ti",
    b"m",
    b"%",
    b"$(id)",
    b" ",
];

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            2 if !out.is_empty() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 if !out.is_empty() => {
                let end = (at + rng.below(32)).min(out.len());
                let copy = out[at.min(end)..end].to_vec();
                out.splice(end..end, copy);
            }
            _ => {
                let byte = u8::try_from(rng.below(256)).unwrap_or(0);
                out.insert(at, byte);
            }
        }
    }
    out
}

fn sha(c: char) -> String {
    std::iter::repeat_n(c, 40).collect()
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let repo = json!({"id": 1, "full_name": "acme/web", "name": "web", "owner": {"login": "acme"},
        "default_branch": "main", "private": false});
    let pr = json!({"number": 7, "title": "T", "user": {"login": "maya"}, "draft": false,
        "merged": false, "labels": [{"name": "preview:keep"}],
        "head": {"ref": "feature/x", "sha": sha('a'), "repo": {"id": 1}},
        "base": {"ref": "main", "sha": sha('b'), "repo": {"id": 1}}});
    let installation = json!({"id": 5, "account": {"login": "acme", "type": "Organization"}});
    let sender = json!({"login": "maya"});
    let events = [
        ("ping", json!({"zen": "Keep it simple.", "hook_id": 1})),
        (
            "pull_request",
            json!({"action": "synchronize", "number": 7, "pull_request": pr,
            "repository": repo, "installation": {"id": 5}, "sender": sender}),
        ),
        (
            "check_run",
            json!({"action": "requested_action", "requested_action": {"identifier": "redeploy"},
            "check_run": {"id": 9, "head_sha": sha('c'), "external_id": "3",
                "pull_requests": [{"number": 7}]},
            "repository": repo, "installation": {"id": 5}, "sender": sender}),
        ),
        (
            "check_suite",
            json!({"action": "rerequested",
            "check_suite": {"head_sha": sha('d'), "pull_requests": [{"number": 7}]},
            "repository": repo, "installation": {"id": 5}, "sender": sender}),
        ),
        (
            "issue_comment",
            json!({"action": "created",
            "issue": {"number": 7, "pull_request": {"url": "x"}},
            "comment": {"body": "/preview redeploy"},
            "repository": repo, "installation": {"id": 5}, "sender": sender}),
        ),
        (
            "installation",
            json!({"action": "created", "installation": installation,
            "repositories": [{"id": 1, "full_name": "acme/web"}], "sender": sender}),
        ),
        (
            "installation_repositories",
            json!({"action": "added", "installation": installation,
            "repositories_added": [{"id": 2, "full_name": "acme/api"}],
            "repositories_removed": [], "sender": sender}),
        ),
    ];
    events
        .into_iter()
        .map(|(event, body)| (event, serde_json::to_vec(&body).expect("json")))
        .collect()
}

/// Mutates `seeds` `cases` times (now and then under another event's name, or one nobody
/// sends) and parses each: no panic, every refusal says something, and a good share still
/// parses — else the mutations fuzz nothing past the first byte.
fn fuzz_webhooks(seeds: &[(String, Vec<u8>)], cases: usize, rng: u64) {
    let covered: Vec<&str> = seeds.iter().map(|(e, _)| e.as_str()).collect();
    for event in HANDLED_EVENTS {
        assert!(covered.contains(&event), "a seed for {event}");
    }
    let mut rng = Rng(rng);
    let mut parsed = 0;
    for i in 0..cases {
        let (event, seed) = &seeds[i % seeds.len()];
        let name = match rng.below(10) {
            0 => seeds[rng.below(seeds.len())].0.as_str(),
            1 => "made-up",
            _ => event,
        };
        let body = mutate(seed, &mut rng);
        match parse(name, &body) {
            Ok(_) => parsed += 1,
            Err(e) => assert!(!e.to_string().trim().is_empty(), "{name}: an empty error"),
        }
    }
    assert!(parsed > cases / 20, "only {parsed} of {cases} cases parsed");
}

#[test]
fn webhook_payloads_never_panic_and_every_refusal_says_why() {
    let seeds: Vec<(String, Vec<u8>)> = seeds()
        .into_iter()
        .map(|(e, b)| (e.to_owned(), b))
        .collect();
    fuzz_webhooks(&seeds, CASES * 2, 0x5EED_0001);
}

/// Every delivery previewd reads, whole as GitHub sends it (the simulator renders its payloads
/// field for field from GitHub's webhook and REST descriptions: URLs, node ids, timestamps,
/// nested repositories, apps and suites), first parsed as sent, then mutated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_github_deliveries_parse_and_survive_mutation() {
    let sim = GitHubSim::start(GitHubSimOptions::default())
        .await
        .expect("simulator");
    let inst = sim.add_installation("acme");
    sim.add_repo(inst, "acme/web");
    let (pr, _) = sim
        .open_pr(
            "acme/web",
            NewPr {
                labels: vec!["preview:keep".into()],
                ..NewPr::default()
            },
        )
        .await;
    sim.push("acme/web", pr.number, &sha('c')).await;
    sim.add_label("acme/web", pr.number, "preview:approved", "alice")
        .await;
    sim.comment("acme/web", pr.number, "alice", "/preview redeploy")
        .await;
    let github = GitHub::new(&GithubConfig {
        app_id: 1234,
        private_key: SecretString::from(
            std::fs::read_to_string(previewd_tests::process::KEY_PATH).expect("key"),
        ),
        webhook_secret: SecretString::from("webhook-secret-value"),
        api_url: url::Url::parse(&sim.url()).expect("url"),
        web_url: url::Url::parse(&sim.url()).expect("url"),
        oauth: None,
    })
    .expect("client");
    let repo = RepoName::parse("acme/web").expect("name");
    let run = github
        .create_check_run(
            inst,
            &repo,
            &CheckRunReport {
                head_sha: sha('c'),
                status: CheckStatus::Queued,
                external_id: "7".into(),
                details_url: None,
                title: "Queued".into(),
                summary: "Waiting".into(),
                text: None,
                actions: Vec::new(),
            },
        )
        .await
        .expect("check run");
    sim.request_action("acme/web", run, "redeploy", "alice")
        .await;
    sim.rerequest_check_run("acme/web", run, "alice").await;
    sim.rerequest_check_suite("acme/web", &sha('c'), "alice")
        .await;
    sim.close_pr("acme/web", pr.number, false).await;
    sim.reopen_pr("acme/web", pr.number).await;
    sim.close_pr("acme/web", pr.number, true).await;
    sim.installation_repositories_event(inst, &["acme/api"], &[])
        .await;
    sim.installation_repositories_event(inst, &[], &["acme/api"])
        .await;
    for action in ["suspend", "unsuspend", "created", "deleted"] {
        sim.installation_event(inst, action).await;
    }
    sim.ping().await;

    let seeds: Vec<(String, Vec<u8>)> = sim
        .deliveries()
        .into_iter()
        .map(|d| (d.event, sim.delivery_body(d.id).expect("recorded body")))
        .collect();
    for (event, body) in &seeds {
        if let Err(e) = parse(event, body) {
            panic!("a {event} delivery as GitHub sends it does not parse: {e}");
        }
    }
    fuzz_webhooks(&seeds, CASES, 0x5EED_00FF);
}

#[test]
fn preview_yml_never_panics_and_every_refusal_says_why() {
    let seed = b"build: { dockerfile: Dockerfile, context: . }\nchart: deploy/chart\nport: 8080\n\
health: /healthz\nenv: { FEATURE_X: \"1\" }\nresources: { cpu: 500m, memory: 512Mi }\nttl: 72h\n\
paths: [ \"web/**\" ]\nimage: ghcr.io/acme/web:{sha}\n";
    let limits = Limits::default();
    let mut rng = Rng(0x5EED_0002);
    for _ in 0..CASES {
        let text = String::from_utf8_lossy(&mutate(seed, &mut rng)).into_owned();
        if let Err(e) = repo_config::parse(&text, &limits) {
            assert!(!e.to_string().trim().is_empty(), "{text:?}: an empty error");
        }
    }
}

#[test]
fn quantities_never_panic_and_every_refusal_says_why() {
    let mut rng = Rng(0x5EED_0003);
    for seed in ["500m", "1Ti", "0.5", "2", "512Mi", "1e3", "100000u"] {
        for _ in 0..CASES / 4 {
            let text = String::from_utf8_lossy(&mutate(seed.as_bytes(), &mut rng)).into_owned();
            for result in [Quantity::cpu(&text), Quantity::memory(&text)] {
                if let Err(e) = result {
                    assert!(!e.trim().is_empty(), "{text:?}: an empty error");
                }
            }
        }
    }
}

#[test]
fn namespace_names_are_always_valid_labels() {
    let mut rng = Rng(0x5EED_0004);
    for seed in ["acme/web", "Ünïcödé-Org/代码.repo", "a/b", "---/___"] {
        for _ in 0..CASES / 4 {
            let name = String::from_utf8_lossy(&mutate(seed.as_bytes(), &mut rng)).into_owned();
            let number = rng.next() >> rng.below(64);
            let namespace = namespace_name(&name, number);
            assert!(
                is_dns1123_label(&namespace),
                "{name:?} #{number} → {namespace:?}"
            );
        }
    }
}

#[test]
fn the_sanitizer_never_panics_and_keeps_its_cap() {
    let seed =
        b"error: token=ghs_abcdefghijklmnopqrstuvwxyz0123456789 at web.default.svc.cluster.local \
password: hunter2 \xe2\x80\xae done";
    let key =
        r"[a-z0-9_]*(?:password|passwd|secret|token|api_?key|private_?key)[a-z0-9_]*\s*[=:]\s*";
    let secret_values = regex::Regex::new(&format!(
        r#"(?i)((?:{key})+)["']?[^\s"',;]*hunter2[^\s"',;]*"#
    ))
    .expect("regex");
    let mut rng = Rng(0x5EED_0005);
    for _ in 0..CASES {
        let text = String::from_utf8_lossy(&mutate(seed, &mut rng)).into_owned();
        let max = rng.below(300);
        let clean = sanitize(&text, max);
        assert!(
            clean.chars().count() <= max + 1,
            "{} chars for a cap of {max}",
            clean.chars().count()
        );
        // hunter2 may stay only where it is not a secret's value (after `key:` or `key=`, or a
        // chain of them: `password: token: hunter2`); key names are kept.
        let stripped = secret_values.replace_all(&text, "${1}");
        if !stripped.contains("hunter2") {
            assert!(!clean.contains("hunter2"), "{text:?} → {clean:?}");
        }
    }
}
