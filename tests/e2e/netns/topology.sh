#!/usr/bin/env bash
# The routed two-cluster topology of tests/e2e/multicluster-netns.sh, as shell functions (source
# this file) or as a command (`topology.sh up|down|partition|heal|show`). Needs root, iproute2 and
# nftables. Nothing is added to the host's network namespace: every veth is created inside the
# router namespace with its peer moved straight into a cluster namespace.
#
#   sl-w1                          sl-rt (router, ip_forward=1)                 sl-w2
#   eth0 10.201.1.1/24  (api,gw) ── rt-w1 10.201.1.254 │ rt-w2 10.201.2.254 ── eth0 10.201.2.1/24
#        10.201.1.10/24 (podinfo)                      │                           10.201.2.10/24
#
# The router's forward chain drops everything between the clusters except TCP to the other
# cluster's controller address on the API port (8086) and the gateway ports (4143, 4191); replies
# of allowed connections go back through conntrack. `partition` adds a chain, hooked before the
# filter, that drops the gateway ports both ways (also on established connections): the gateway
# of workload2 becomes unreachable from workload1 while the API link stays up. `heal` removes it.
NETNS_W1=${NETNS_W1:-sl-w1}
NETNS_W2=${NETNS_W2:-sl-w2}
NETNS_RT=${NETNS_RT:-sl-rt}
NETNS_TABLE=starling_netns

# netns_up: creates the namespaces, links, addresses, routes and the router's firewall.
netns_up() {
  netns_down 2>/dev/null
  set -e
  ip netns add "$NETNS_RT"
  ip netns add "$NETNS_W1"
  ip netns add "$NETNS_W2"
  ip -n "$NETNS_RT" link set lo up
  ip netns exec "$NETNS_RT" sysctl -qw net.ipv4.ip_forward=1
  local n ns
  for n in 1 2; do
    ns=$([ $n = 1 ] && echo "$NETNS_W1" || echo "$NETNS_W2")
    ip -n "$NETNS_RT" link add "rt-w$n" type veth peer name eth0 netns "$ns"
    ip -n "$NETNS_RT" addr add "10.201.$n.254/24" dev "rt-w$n"
    ip -n "$NETNS_RT" link set "rt-w$n" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "10.201.$n.1/24" dev eth0
    ip -n "$ns" addr add "10.201.$n.10/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "10.201.$n.254"
  done
  ip netns exec "$NETNS_RT" nft -f - <<NFT
table inet $NETNS_TABLE {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ip saddr 10.201.1.0/24 ip daddr 10.201.2.1 tcp dport 8086 ct state new counter accept comment "w1 to w2 api"
    ip saddr 10.201.1.0/24 ip daddr 10.201.2.1 tcp dport { 4143, 4191 } ct state new counter accept comment "w1 to w2 gateway"
    ip saddr 10.201.2.0/24 ip daddr 10.201.1.1 tcp dport 8086 ct state new counter accept comment "w2 to w1 api"
    ip saddr 10.201.2.0/24 ip daddr 10.201.1.1 tcp dport { 4143, 4191 } ct state new counter accept comment "w2 to w1 gateway"
    counter comment "dropped"
  }
}
NFT
  set +e
}

# netns_partition: drops workload2's gateway ports (4143, 4191) between the clusters, both ways,
# new and established connections alike.
netns_partition() {
  ip netns exec "$NETNS_RT" nft -f - <<NFT
table inet $NETNS_TABLE {
  chain partition {
    type filter hook forward priority filter - 10; policy accept;
    ip daddr 10.201.2.1 tcp dport { 4143, 4191 } drop
    ip saddr 10.201.2.1 tcp sport { 4143, 4191 } drop
  }
}
NFT
}

# netns_heal: undoes netns_partition.
netns_heal() {
  ip netns exec "$NETNS_RT" nft delete chain inet "$NETNS_TABLE" partition
}

# netns_counter COMMENT: the packet count of the router's forward rule with that comment.
netns_counter() {
  ip netns exec "$NETNS_RT" nft list chain inet "$NETNS_TABLE" forward \
    | sed -n "s/.*counter packets \([0-9]*\) .*comment \"$1\".*/\1/p"
}

# netns_down: deletes the namespaces (their veths and nft tables go with them). Processes still
# running inside keep a namespace alive; kill them first.
netns_down() {
  local ns
  for ns in "$NETNS_W1" "$NETNS_W2" "$NETNS_RT"; do
    ip netns del "$ns" 2>/dev/null
  done
  return 0
}

netns_show() {
  local ns
  for ns in "$NETNS_W1" "$NETNS_W2" "$NETNS_RT"; do
    echo "== $ns"; ip -n "$ns" -br addr; ip -n "$ns" route
  done
  ip netns exec "$NETNS_RT" nft list table inet "$NETNS_TABLE"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    up) netns_up ;; down) netns_down ;; partition) netns_partition ;; heal) netns_heal ;; show) netns_show ;;
    *) echo "usage: $0 up|down|partition|heal|show" >&2; exit 2 ;;
  esac
fi
