//! A domain in a site's control: `add-domain` (with its browse list) and
//! `remove-domain`. Both are site control changes sent as a CT1 by
//! [`super::site_control::send_change`].

use sms_proto::v1 as pb;

use crate::output::Out;

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// The site (at the site itself or any ancestor).
    #[arg(long)]
    pub site: String,
    /// Domain name.
    #[arg(long)]
    pub name: String,
    /// The domain's browse list: addresses or DNS names, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub browse: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    /// The site (at the site itself or any ancestor).
    #[arg(long)]
    pub site: String,
    /// Domain name.
    #[arg(long)]
    pub name: String,
}

/// What happens to the domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Add it with this browse list.
    Add(Vec<String>),
    Remove,
}

impl Verb {
    /// The command, as errors name it.
    pub fn command(&self) -> &'static str {
        match self {
            Verb::Add(_) => "add-domain",
            Verb::Remove => "remove-domain",
        }
    }
}

/// The site control change that adds or removes domain `name` at `site`.
/// Logon servers are not given here: the site finds them itself.
pub fn request(site: String, name: String, verb: Verb) -> pb::ChangeSiteControlRequest {
    let mut req = pb::ChangeSiteControlRequest {
        site,
        ..Default::default()
    };
    match verb {
        Verb::Add(browse) => {
            req.add_domain = Some(pb::Domain {
                name,
                browse,
                logon_servers: vec![],
            })
        }
        Verb::Remove => req.remove_domain = name,
    }
    req
}

pub async fn run(
    node: &Option<String>,
    out: &Out,
    site: String,
    name: String,
    verb: Verb,
) -> anyhow::Result<()> {
    let what = verb.command();
    super::site_control::send_change(node, out, what, request(site, name, verb)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_sends_the_domain_and_removing_only_its_name() {
        let add = request(
            "S01".into(),
            "NORTH".into(),
            Verb::Add(vec!["10.0.0.1".into(), "dc".into()]),
        );
        assert_eq!(add.site, "S01");
        assert_eq!(add.remove_domain, "");
        let d = add.add_domain.unwrap();
        assert_eq!((d.name.as_str(), d.browse.len()), ("NORTH", 2));
        assert!(d.logon_servers.is_empty());
        let rm = request("S01".into(), "NORTH".into(), Verb::Remove);
        assert_eq!(rm.remove_domain, "NORTH");
        assert!(rm.add_domain.is_none() && rm.address.is_none());
        assert_eq!(Verb::Remove.command(), "remove-domain");
        assert_eq!(Verb::Add(vec![]).command(), "add-domain");
    }
}
