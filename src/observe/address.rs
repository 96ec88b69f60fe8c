//! Where the metrics server listens: an address, loopback unless another host is named.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The address `/metrics`, `/health`, `/ready` and the dashboard are served on.
///
/// Written `host:port` (`127.0.0.1:9184`, `[::1]:9184`, `0.0.0.0:9184`), or a port alone
/// (`9184` or `:9184`), which listens on the loopback interface only: nothing is exposed
/// beyond the machine unless a host is named. Port 0 picks a free port.
///
/// # Examples
/// ```
/// use diffmill::observe::ListenAddress;
///
/// let port_only: ListenAddress = "9184".parse().unwrap();
/// assert_eq!(port_only.to_string(), "127.0.0.1:9184");
/// let named: ListenAddress = "0.0.0.0:9184".parse().unwrap();
/// assert_eq!(named.socket().port(), 9184);
/// assert!("localhost".parse::<ListenAddress>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ListenAddress(SocketAddr);

impl ListenAddress {
    /// The socket address.
    pub fn socket(self) -> SocketAddr {
        self.0
    }
}

impl FromStr for ListenAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let port = text.strip_prefix(':').unwrap_or(text);
        if let Ok(port) = port.parse::<u16>() {
            return Ok(ListenAddress(SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
        }
        text.parse::<SocketAddr>().map(ListenAddress).map_err(|_| {
            format!(
                "`{text}` is not an address: write host:port with an IP address \
                 (127.0.0.1:9184, [::1]:9184, 0.0.0.0:9184) or a port alone (9184, on loopback)"
            )
        })
    }
}

impl TryFrom<String> for ListenAddress {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<ListenAddress> for String {
    fn from(address: ListenAddress) -> String {
        address.to_string()
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
