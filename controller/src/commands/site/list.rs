//! `controller sites`: the Hierarchy Manager's site list (at a primary),
//! once or redrawn with `--watch`.

use serde_json::json;

use crate::client::connect;
use crate::output::{site_json, sites_table, Out};
use crate::watch::{self, WatchArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub watch: WatchArgs,
}

pub async fn run(node: &Option<String>, out: &Out, a: Args) -> anyhow::Result<()> {
    let (_, c) = connect(node).await?;
    watch::run(out, &a.watch, "sites", || {
        let mut c = c.clone();
        async move {
            let sites = super::list_sites(&mut c, "sites").await?;
            let v = json!({ "sites": sites.iter().map(site_json).collect::<Vec<_>>() });
            Ok((v, sites_table(&sites).to_string()))
        }
    })
    .await
}
