//! `pop-kube-fake --port 6443 --work-dir DIR [--image NAME=PROGRAM]...
//! [--namespace NS]... [--node-label K=V]...`: the fake cluster as its own
//! process, for trying POP against "a cluster" by hand. Prints the
//! kubeconfig path once it serves.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let mut options = pop_kube_fake::ClusterOptions::new(std::env::temp_dir().join("pop-kube-fake"));
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--port" => port = value.parse().unwrap_or(0),
            "--work-dir" => options.work_dir = PathBuf::from(value),
            "--namespace" => options.namespaces.push(value),
            "--image" => match value.split_once('=') {
                Some((image, program)) => {
                    options.images.insert(image.to_owned(), PathBuf::from(program));
                }
                None => {
                    return Err(std::io::Error::other(format!(
                        "--image wants NAME=PROGRAM, got {value:?}"
                    )));
                }
            },
            "--node-label" => match value.split_once('=') {
                Some((key, label)) => {
                    options.node_labels.insert(key.to_owned(), label.to_owned());
                }
                None => return Err(std::io::Error::other(format!("--node-label wants K=V, got {value:?}"))),
            },
            other => return Err(std::io::Error::other(format!("unknown flag {other}"))),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let cluster = pop_kube_fake::FakeCluster::start(options, port).await?;
        println!(
            "pop-kube-fake serving on {} (KUBECONFIG={})",
            cluster.url(),
            cluster.kubeconfig.display()
        );
        let _ = tokio::signal::ctrl_c().await;
        Ok(())
    })
}
