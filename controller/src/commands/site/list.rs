//! `controller sites`: the Hierarchy Manager's site list (at a primary).

use serde_json::json;

use crate::client::connect;
use crate::output::{site_json, sites_table, Out};

#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(node: &Option<String>, out: &Out, _: Args) -> anyhow::Result<()> {
    let (_, mut c) = connect(node).await?;
    let sites = super::list_sites(&mut c, "sites").await?;
    let v = json!({ "sites": sites.iter().map(site_json).collect::<Vec<_>>() });
    out.print(&v, || println!("{}", sites_table(&sites)));
    Ok(())
}
