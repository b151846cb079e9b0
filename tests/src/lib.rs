//! Rewind's test harness: a real local control plane (kube-apiserver + etcd),
//! Rancher-like fixtures, and fault hooks.
