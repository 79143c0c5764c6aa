//! The status message catalogue: every message id, its severity, the
//! component that reports it and its text template, in one place.
//!
//! Templates use `%1`, `%2`, ... for insertion strings, as SMS did.

use crate::Severity;

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct MessageDef {
    pub id: u32,
    pub severity: Severity,
    pub component: &'static str,
    pub template: &'static str,
}

macro_rules! catalogue {
    ($($name:ident = $id:literal, $sev:ident, $comp:literal, $text:literal;)*) => {
        $(
            #[doc = $text]
            pub const $name: MessageDef = MessageDef {
                id: $id,
                severity: Severity::$sev,
                component: $comp,
                template: $text,
            };
        )*
        /// Every catalogue entry.
        pub const ALL: &[MessageDef] = &[$($name),*];
    };
}

catalogue! {
    SITE_INSTALLED = 1000, Informational, "SMS_SITE_COMPONENT_MANAGER",
        "Site %1 (%2) was installed on this server as a central primary site.";
    COMPONENTS_INSTALLED = 1001, Informational, "SMS_SITE_COMPONENT_MANAGER",
        "Components installed and running on this site server: %1.";
    CT1_APPLIED = 2800, Informational, "SMS_SITE_CONFIG_MANAGER",
        "Site control of site %1 was updated from serial %2 to serial %3 (proposed by %4).";
    CT2_FORCED = 2802, Informational, "SMS_SITE_CONFIG_MANAGER",
        "An administrator forced site %1 to re-process its site control (serial %2) and send a new CT2 to its parent.";
    CT1_REJECTED = 2801, Error, "SMS_SITE_CONFIG_MANAGER",
        "A site control proposal for site %1 was rejected and kept in the bad box: %2.";
    HM_SITE_CREATED = 3100, Informational, "SMS_HIERARCHY_MANAGER",
        "Secondary site %1 is being created on server %2. Its status is Pending until it reports.";
    HM_SITE_STATUS = 3101, Informational, "SMS_HIERARCHY_MANAGER",
        "The status of site %1 changed from %2 to %3.";
    HM_PRIMARY_ATTACHED = 3103, Informational, "SMS_HIERARCHY_MANAGER",
        "Primary site %1 on server %2 attached itself below this site. Its status is Pending until it reports.";
    HM_SITE_UPGRADE = 3104, Informational, "SMS_HIERARCHY_MANAGER",
        "The install of site %1 on server %2 is being run again (version %3).";
    HM_SITE_DELETING = 3105, Informational, "SMS_HIERARCHY_MANAGER",
        "Site %1 is being deleted; its server %2 is told to remove its install.";
    HM_SITE_DELETED = 3106, Informational, "SMS_HIERARCHY_MANAGER",
        "Site %1 was removed from the hierarchy; its server %2 is a bare node again. Its SMS unique ID counter (%3) is kept for a site re-created with the same code.";
    HM_SITE_ORPHANED = 3107, Warning, "SMS_HIERARCHY_MANAGER",
        "Site %1 was removed from the hierarchy, but its server %2 could not be told and may still hold its install (orphaned). Its SMS unique ID counter (%3) is kept.";
    HM_PRIMARY_DETACHING = 3108, Informational, "SMS_HIERARCHY_MANAGER",
        "Primary site %1 is being removed from this hierarchy; its server %2 is told to carry on as a central site of its own.";
    HM_PRIMARY_DETACHED = 3109, Informational, "SMS_HIERARCHY_MANAGER",
        "Primary site %1 (server %2) left the hierarchy with the %4 sites below it and carries on as a central site of its own. Its SMS unique ID counter as last reported (%3) is kept here.";
    SITE_DETACHED = 1004, Warning, "SMS_SITE_COMPONENT_MANAGER",
        "Parent site %1 removed this primary site from its hierarchy: it is now a central site, with the sites below it; %2 jobs queued for %1 were set aside.";
    SITE_STATUS_SUMMARY = 1003, Informational, "SMS_SITE_CONFIG_MANAGER",
        "Site status of %1: %2 of %3 components running; links: %4.";
    SITE_DEINSTALLING = 1002, Warning, "SMS_SITE_COMPONENT_MANAGER",
        "Parent site %1 deleted this site: its install is removed and the node restarts as a bare node.";
    CT2_REFUSED = 3110, Error, "SMS_HIERARCHY_MANAGER",
        "A site control report (CT2) for site %1 was refused and set aside: %2.";
    HM_SITE_STALE = 3120, Error, "SMS_HIERARCHY_MANAGER",
        "Site %1 has not reported to this site for %2 (a CT2 or a status message), more than %3 of its polling intervals of %4: it is shown Stale. Check its server and the links to it.";
    HM_SITE_REPORTS_AGAIN = 3121, Informational, "SMS_HIERARCHY_MANAGER",
        "Site %1 reported again after %2 of silence; it is no longer Stale.";
    HM_UNKNOWN_CT2 = 3102, Warning, "SMS_HIERARCHY_MANAGER",
        "A site control report (CT2) arrived for site %1, which is not in this site's hierarchy; it was set aside.";
    BOOTSTRAP_PHASE1 = 3300, Informational, "SMS_BOOTSTRAP",
        "Site %1 install phase 1 complete: package verified (%2 bytes), store and identity created, scheduler, sender and despooler installed.";
    BOOTSTRAP_PHASE2 = 3301, Informational, "SMS_BOOTSTRAP",
        "Site %1 install phase 2 complete: the remaining site components are installed.";
    BOOTSTRAP_PHASE3 = 3302, Informational, "SMS_BOOTSTRAP",
        "Site %1 install phase 3 complete: the initial site control was processed into serial %2.";
    BOOTSTRAP_PHASE4 = 3303, Informational, "SMS_BOOTSTRAP",
        "Site %1 install phase 4 complete: the first site control report (CT2) is queued for parent site %2; the bootstrap has removed itself.";
    LOGON_FOUND = 2810, Informational, "SMS_SITE_CONFIG_MANAGER",
        "Found member server %1 of domain %2; it is pending install as a logon server.";
    LOGON_INSTALLED = 2811, Informational, "SMS_SITE_CONFIG_MANAGER",
        "Installed the logon server component on %1 (domain %2) with SMS unique IDs %3 to %4.";
    LOGON_REINSTALL = 2812, Warning, "SMS_SITE_CONFIG_MANAGER",
        "Logon server %1 (domain %2) lost its install; it is being reinstalled with a new ID range.";
    LOGON_UNINSTALLED = 2813, Informational, "SMS_SITE_CONFIG_MANAGER",
        "Removed the logon server component from %1: domain %2 is no longer in the site control.";
    LOGON_OTHER_SITE = 2814, Warning, "SMS_SITE_CONFIG_MANAGER",
        "Server %1 in the browse list of domain %2 is already a logon server of site %3; it was left alone.";
    LOGON_NOT_MEMBER = 2815, Warning, "SMS_SITE_CONFIG_MANAGER",
        "Server %1 in the browse list of domain %2 is not a member server of that domain (it is %3); nothing was installed.";
    LOGON_UNRESOLVED = 2816, Warning, "SMS_SITE_CONFIG_MANAGER",
        "Browse entry %1 of domain %2 resolves to no address (%3).";
    LOGON_UNREACHABLE = 2817, Warning, "SMS_SITE_CONFIG_MANAGER",
        "Server %1 of domain %2 does not answer: %3.";
    LOGON_INSTALL_FAILED = 2818, Error, "SMS_SITE_CONFIG_MANAGER",
        "Could not install the logon server component on %1 (domain %2): %3. It stays pending install.";
    JOB_FAILED = 4400, Error, "SMS_SENDER",
        "Job %1 (%2) for site %3 failed after %4 attempts and was kept in the failed box: %5.";
    LINK_SEVERED = 4401, Warning, "SMS_SENDER",
        "The link to site %1 was severed by an administrator; jobs for it stay queued.";
    LINK_RESTORED = 4402, Informational, "SMS_SENDER",
        "The link to site %1 was restored; queued jobs flow again.";
    JOBS_RETRIED = 4403, Informational, "SMS_SENDER",
        "%1 failed jobs for site %2 were put back in the outbox.";
    DESPOOL_REFUSED = 4600, Warning, "SMS_DESPOOLER",
        "Refused a connection from site %1: %2.";
    DESPOOL_UNROUTABLE = 4601, Warning, "SMS_DESPOOLER",
        "Refused job %1 from site %2 for site %3: %4.";
    PACKAGE_RECEIVED = 4602, Informational, "SMS_DESPOOLER",
        "File package %1 (%2, %3 bytes) from site %4 arrived complete; its SHA-256 %5 matches the sender's.";
    PACKAGE_DAMAGED = 4603, Error, "SMS_DESPOOLER",
        "File package %1 (%2) from site %3 arrived complete but its SHA-256 is %4, not %5 as sent; the damaged copy was removed. Send the package again.";
    AUDIT_ADMIN_ACTION = 4800, Informational, "SMS_PROVIDER",
        "Administrator %1 ran %2 on site %3 (%4).";
    AUDIT_TOKEN_CREATED = 4801, Informational, "SMS_PROVIDER",
        "Administrator %1 created join token %2 for %3 %4, valid until unix time %5.";
    AUDIT_CERT_ISSUED = 4802, Informational, "SMS_PROVIDER",
        "A certificate was issued for %1 %2 (serial %3): %4.";
    TRUST_REFUSED = 4803, Warning, "SMS_PROVIDER",
        "Refused %1 from %2: %3.";
    TRUST_JOIN_REFUSED = 4806, Warning, "SMS_PROVIDER",
        "A node at %1 tried to join as %2 %3 with join token %4 and was refused: %5";
    TRUST_RENEWED = 4804, Informational, "SMS_PROVIDER",
        "This node's %1 certificate was renewed: serial %2, valid until unix time %3 (it replaces serial %4).";
    TRUST_RENEWAL_FAILED = 4805, Warning, "SMS_PROVIDER",
        "Could not renew this node's %1 certificate (serial %2, valid until unix time %3): %4. It is tried again every %5 s; once it expires, the node must join again with a new token.";
    MP_FLAGGED = 1013, Informational, "SMS_MP_CONTROL_MANAGER",
        "Site Component Manager found that the management point component should be installed on site system %1 (port %2). It will try to install it every %3 until the install succeeds.";
    MP_INSTALLING = 1014, Informational, "SMS_MP_CONTROL_MANAGER",
        "Site Component Manager is installing the management point component on site system %1 (attempt %2).";
    MP_INSTALLED = 1015, Informational, "SMS_MP_CONTROL_MANAGER",
        "Site Component Manager installed the management point component on site system %1: it serves clients on port %2 from %3.";
    MP_INSTALL_FAILED = 1016, Error, "SMS_MP_CONTROL_MANAGER",
        "Site Component Manager could not install the management point component on site system %1: %2. It tries again in %3.";
    MP_UNINSTALLED = 1017, Informational, "SMS_MP_CONTROL_MANAGER",
        "Site Component Manager removed the management point component from site system %1; port %2 is free again.";
    MP_UNINSTALL_FAILED = 1018, Warning, "SMS_MP_CONTROL_MANAGER",
        "Site Component Manager could not remove the management point component from site system %1: %2. It tries again every interval.";
    MP_ACCESS_GROUP = 4908, Error, "SMS_SITE_COMPONENT_MANAGER",
        "Site Component Manager could not add server %1 (node %2) to the access group of the site database of site %3: %4.";
    MP_BAD_FILESYSTEM = 4950, Error, "SMS_MP_CONTROL_MANAGER",
        "Management point setup on %1 refused: %2. Give the server a data volume on a filesystem that honours fsync, mounted read-write (sms-node --mp-volumes).";
    MP_LOW_SPACE = 4951, Error, "SMS_MP_CONTROL_MANAGER",
        "Management point setup on %1 refused: %2. Free space on the volume or allow a larger one (sms-node --mp-volumes).";
    MP_PORT_TAKEN = 4952, Error, "SMS_MP_CONTROL_MANAGER",
        "Management point setup on %1 refused: %2. Stop that process or give the management point another port (controller mp remove, then mp add --port N).";
    MP_LATER_VERSION = 4953, Error, "SMS_MP_CONTROL_MANAGER",
        "Management point setup on %1 refused: %2. Remove the later management point from that server first.";
    MP_UNREACHABLE = 4954, Error, "SMS_MP_CONTROL_MANAGER",
        "Site Component Manager cannot reach site system %1: %2.";
    MP_DB_REFUSED = 5414, Error, "SMS_MP_CONTROL_MANAGER",
        "The management point on %1 cannot use the site database of site %2: %3. Grant it access (clear the refusal at the site server), then the install is retried.";
    MP_VERIFY_FAILED = 5436, Error, "SMS_MP_CONTROL_MANAGER",
        "MP Control Manager: the management point on %1 does not answer its verification request: %2.";
    MP_VERIFY_OK = 5437, Informational, "SMS_MP_CONTROL_MANAGER",
        "MP Control Manager: the management point on %1 answers its verification request again (%2).";
    STATUS_LOAD_TEST = 4700, Informational, "SMS_STATUS_MANAGER",
        "Load test %1: test message %2 of %3, reported at %4 per second.";
}

/// Looks up an id.
pub fn lookup(id: u32) -> Option<&'static MessageDef> {
    ALL.iter().find(|d| d.id == id)
}

/// Fills a template's `%N` placeholders (highest first, so `%1` never eats `%10`).
pub fn render(def: &MessageDef, args: &[String]) -> String {
    let mut text = def.template.to_string();
    for (i, a) in args.iter().enumerate().rev() {
        text = text.replace(&format!("%{}", i + 1), a);
    }
    text
}

/// The bootstrap phase an id reports, if it is a phase report.
pub fn bootstrap_phase(id: u32) -> Option<u8> {
    match id {
        3300 => Some(1),
        3301 => Some(2),
        3302 => Some(3),
        3303 => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_render() {
        let mut ids: Vec<u32> = ALL.iter().map(|d| d.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), ALL.len());
        let t = render(
            &HM_SITE_STATUS,
            &["S01".into(), "Pending".into(), "Active".into()],
        );
        assert_eq!(t, "The status of site S01 changed from Pending to Active.");
        assert_eq!(bootstrap_phase(BOOTSTRAP_PHASE4.id), Some(4));
    }
}
