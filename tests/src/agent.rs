//! An AI agent's side of previewd's MCP tools, through rmcp's own client: connect with an API
//! token in the current protocol version (by discovery) or the one before it (the `initialize`
//! handshake), and call a tool with JSON arguments.

use rmcp::{
    ClientLifecycleMode, ClientServiceExt as _, RoleClient, ServiceExt as _,
    model::{CallToolRequestParams, CallToolResult, ProtocolVersion},
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::Value;

/// A connected client.
pub type Agent = RunningService<RoleClient, ()>;

/// Connects to `app_url`'s `/mcp` with `token`: the current protocol version when `current`,
/// else the one before it.
pub async fn connect(app_url: &str, token: &str, current: bool) -> anyhow::Result<Agent> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{app_url}/mcp")).auth_header(token),
    );
    let agent = if current {
        ().serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await?
    } else {
        ().serve(transport).await?
    };
    Ok(agent)
}

/// Calls `tool` with `args` (a JSON object).
pub async fn call(
    agent: &Agent,
    tool: &'static str,
    args: Value,
) -> anyhow::Result<CallToolResult> {
    let Value::Object(args) = args else {
        anyhow::bail!("tool arguments are a JSON object, not {args}");
    };
    Ok(agent
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await?)
}
