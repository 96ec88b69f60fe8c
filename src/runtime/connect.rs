//! Connecting the processes of a cluster: one TCP socket to every other process.
//!
//! Timely's own setup (`CommunicationConfig::try_build`) prints its progress on stdout
//! ("awaiting connections", "error connecting to worker … retrying"), where the stdout
//! sink writes data. So diffmill makes the sockets itself, with timely's handshake
//! (process `i` connects to every process below it and sends its index as a big-endian
//! `u64`; it accepts the processes above it on its own address), reports what it tries
//! through `tracing` (stderr), and hands the sockets to timely's
//! `initialize_networking_from_sockets`, the hook timely offers for sockets connected
//! elsewhere.

use std::any::Any;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::{Hooks, WorkerGuards};
use timely::worker::Worker;
use timely::CommunicationConfig;

/// How long a process waits between attempts to reach a process that is not up yet.
const RETRY: Duration = Duration::from_secs(1);

/// `timely::execute`, with the sockets of a cluster connected by [`connect`]: runs `func`
/// on every worker thread of this process.
///
/// # Errors
/// The cluster cannot be joined: this process's address cannot be listened on (taken by
/// another process), or a peer sent a bad handshake. The message names the address and
/// contains "networking".
pub(crate) fn execute<T, F>(config: timely::Config, func: F) -> Result<WorkerGuards<T>, String>
where
    T: Send + 'static,
    F: Fn(&mut Worker) -> T + Send + Sync + 'static,
{
    let (builders, others) = communication(config.communication)?;
    timely::execute::execute_from(builders, others, config.worker, func)
}

/// The allocators of this process's workers, and what must live as long as they run:
/// for a cluster, over the sockets of [`connect`]; otherwise as timely builds them.
fn communication(
    config: CommunicationConfig,
) -> Result<(Vec<AllocatorBuilder>, Box<dyn Any + Send>), String> {
    let CommunicationConfig::Cluster {
        threads,
        process,
        addresses,
        zerocopy,
        ..
    } = config
    else {
        return config.try_build();
    };
    let failed = |e: std::io::Error| format!("failed to initialize networking: {e}");
    let sockets = connect(&addresses, process).map_err(failed)?;
    let hooks = Hooks::default();
    let local = match zerocopy {
        true => ProcessBuilder::new_bytes_vector(threads, hooks.refill.clone(), None),
        false => ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), None),
    };
    let (builders, guard) =
        initialize_networking_from_sockets(local, sockets, process, threads, hooks)
            .map_err(failed)?;
    Ok((
        builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
        Box::new(guard),
    ))
}

/// Sockets to every process of `addresses` but `me` (whose slot is `None`), in process
/// order: connected to the processes below `me` (retrying until each is up) and accepted
/// from the processes above it.
///
/// # Errors
/// `addresses[me]` cannot be listened on, or an accepted peer's handshake is bad.
fn connect(addresses: &[String], me: usize) -> std::io::Result<Vec<Option<TcpStream>>> {
    let own = &addresses[me];
    let listener = TcpListener::bind(own.as_str()).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {own} (process {me}): {e}"),
        )
    })?;
    let above = addresses.len() - me - 1;
    let accepting = std::thread::spawn(move || accept(&listener, me, above));
    let mut sockets = Vec::with_capacity(addresses.len());
    for (peer, address) in addresses[..me].iter().enumerate() {
        sockets.push(Some(connect_to(address, me, peer)?));
    }
    sockets.push(None);
    let accepted = accepting
        .join()
        .map_err(|_| std::io::Error::other("the thread accepting connections failed"))??;
    sockets.extend(accepted.into_iter().map(Some));
    Ok(sockets)
}

/// Connects to process `peer` at `address`, saying so on stderr while it is not up, and
/// sends the handshake.
fn connect_to(address: &str, me: usize, peer: usize) -> std::io::Result<TcpStream> {
    let mut reported = None::<String>;
    loop {
        match TcpStream::connect(address) {
            Ok(mut stream) => {
                stream.set_nodelay(true)?;
                stream.write_all(&(me as u64).to_be_bytes())?;
                if reported.is_some() {
                    tracing::info!("process {me}: connected to process {peer} at {address}");
                }
                return Ok(stream);
            }
            Err(error) => {
                let problem = error.to_string();
                if reported.as_ref() != Some(&problem) {
                    tracing::info!(
                        "process {me}: process {peer} at {address} is not reachable yet \
                         ({problem}); retrying every {}s",
                        RETRY.as_secs()
                    );
                    reported = Some(problem);
                }
                std::thread::sleep(RETRY);
            }
        }
    }
}

/// Accepts the `count` processes above `me`, each identified by its handshake; returns
/// their sockets in process order.
fn accept(listener: &TcpListener, me: usize, count: usize) -> std::io::Result<Vec<TcpStream>> {
    let mut accepted: Vec<Option<TcpStream>> = (0..count).map(|_| None).collect();
    while accepted.iter().any(Option::is_none) {
        let (mut stream, from) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut index = [0u8; 8];
        stream.read_exact(&mut index)?;
        let peer = u64::from_be_bytes(index) as usize;
        let slot = peer
            .checked_sub(me + 1)
            .and_then(|slot| accepted.get_mut(slot))
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{from} introduced itself as process {peer}, which should not connect \
                         to process {me}: do all processes use the same hostfile and -n?"
                    ),
                )
            })?;
        *slot = Some(stream);
    }
    Ok(accepted.into_iter().flatten().collect())
}
