//! The kernel's view of a link's TCP connection (`ss -ti` inside a
//! namespace): retransmission timeout, its exponential backoff, smoothed
//! round-trip time and retransmissions. On a lossy line these, not the
//! node, decide how fast a direction runs, so the loss figures print them.

use std::process::Command;

/// Worst values seen over the samples of one direction's sockets.
#[derive(Debug, Default, Clone)]
pub struct TcpWorst {
    pub samples: u32,
    /// Largest retransmission timeout, ms.
    pub rto_ms: u64,
    /// Largest backoff exponent (the RTO doubled this many times).
    pub backoff: u64,
    /// Largest smoothed RTT, ms.
    pub srtt_ms: f64,
    /// Retransmitted segments, total of the last sample.
    pub retrans: u64,
}

impl TcpWorst {
    /// Adds one `ss` sample of the sockets `filter` selects in `ns`.
    pub fn sample(&mut self, ns: &str, filter: &[&str]) {
        let args = [
            &["netns", "exec", ns, "ss", "-tinH", "state", "established"][..],
            filter,
        ]
        .concat();
        let Ok(out) = Command::new("ip").args(&args).output() else {
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut retrans = 0;
        let mut any = false;
        // Socket lines start in column 0, their details on the next,
        // indented line.
        for info in text.lines().filter(|l| l.starts_with(char::is_whitespace)) {
            any = true;
            for field in info.split_whitespace() {
                let Some((k, v)) = field.split_once(':') else {
                    continue;
                };
                let first = v.split('/').next().unwrap_or(v);
                match k {
                    "rto" => self.rto_ms = self.rto_ms.max(first.parse().unwrap_or(0)),
                    "backoff" => self.backoff = self.backoff.max(first.parse().unwrap_or(0)),
                    "rtt" => self.srtt_ms = self.srtt_ms.max(first.parse().unwrap_or(0.0)),
                    // retrans:<unrecovered>/<total>
                    "retrans" => {
                        retrans += v
                            .rsplit('/')
                            .next()
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0)
                    }
                    _ => {}
                }
            }
        }
        if any {
            self.samples += 1;
            self.retrans = retrans;
        }
    }
}

impl std::fmt::Display for TcpWorst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "max rto {} ms, max backoff {}, max srtt {:.0} ms, retrans {}",
            self.rto_ms, self.backoff, self.srtt_ms, self.retrans
        )
    }
}
