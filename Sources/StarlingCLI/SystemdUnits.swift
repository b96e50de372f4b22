/// The systemd units `starling install --target systemd` prints: the controller (one per
/// replica host; it also runs the cluster's gateway once multicluster is installed, unless the
/// gateway has hosts of its own), the gateway (`starling gateway`, on a host of its own) and a
/// proxy template, one instance per workload. Hardened: a dedicated user, no new privileges, a
/// read-only system, private /tmp and devices, and write access only to the state directory.
enum SystemdUnits {
    struct Settings {
        var binary = "/usr/local/bin/starling"
        var user = "starling"
        var clusterName: String
        /// `postgres://USER@HOST:PORT/DB` (the password comes from the environment file).
        var store: String?
        var apiAddress = "0.0.0.0:8086"
        var adminAddress = "127.0.0.1:9990"
        /// Every replica's API address, for the proxies' `--controller`.
        var replicas: [String]
        var otherReplicaNames: [String] = []
    }

    /// The hardening every unit shares.
    static let hardening = """
        NoNewPrivileges=yes
        ProtectSystem=strict
        ProtectHome=yes
        PrivateTmp=yes
        PrivateDevices=yes
        ProtectKernelTunables=yes
        ProtectKernelModules=yes
        ProtectKernelLogs=yes
        ProtectControlGroups=yes
        ProtectClock=yes
        ProtectHostname=yes
        RestrictNamespaces=yes
        RestrictRealtime=yes
        RestrictSUIDSGID=yes
        LockPersonality=yes
        MemoryDenyWriteExecute=yes
        RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
        SystemCallArchitectures=native
        SystemCallFilter=@system-service
        CapabilityBoundingSet=
        AmbientCapabilities=
        UMask=0077
        """

    /// The end of a gateway's or a proxy's unit: restarted at once, hardened, started at boot.
    static let restartedAndHardened = """
        Restart=always
        RestartSec=1
        LimitNOFILE=65536
        \(hardening)

        [Install]
        WantedBy=multi-user.target

        """

    /// `[Unit]` and the start of `[Service]`, the same for every unit.
    static func head(description: String, user: String) -> String {
        """
        [Unit]
        Description=\(description)
        Wants=network-online.target
        After=network-online.target

        [Service]
        Type=simple
        User=\(user)
        Group=\(user)
        """
    }

    static func controller(_ s: Settings) -> String {
        var command = [
            s.binary, "controller", "--cluster-name", s.clusterName, "--data-dir", "/var/lib/starling/controller",
            "--api-address", s.apiAddress, "--admin-address", s.adminAddress,
        ]
        if let store = s.store { command += ["--store", store] }
        for name in s.otherReplicaNames { command += ["--api-certificate-name", name] }
        return """
            # /etc/systemd/system/starling-controller.service — one per controller replica.
            # The data directory holds the replica's credentials (admin-token, token-key, api.crt,
            # api.key, secrets.key): copy it from the first replica to the others before they start.
            # PGPASSWORD=... goes in /etc/starling/controller.env (mode 0600, owned by root).
            \(head(description: "Starling controller (cluster \(s.clusterName))", user: s.user))
            EnvironmentFile=-/etc/starling/controller.env
            ExecStart=\(command.joined(separator: " "))
            Restart=always
            RestartSec=2
            StateDirectory=starling/controller
            StateDirectoryMode=0700
            ReadWritePaths=/var/lib/starling/controller
            LimitNOFILE=65536
            \(hardening)

            [Install]
            WantedBy=multi-user.target

            """
    }

    static func gateway(_ s: Settings) -> String {
        """
        # /etc/systemd/system/starling-gateway.service — the multicluster gateway on a host of its
        # own (one or more; a Link carries every gateway's address). Then start the controllers
        # with --gateway external (add it to their ExecStart), so that they do not serve it too.
        # /etc/starling/gateway.env: LISTEN=10.0.2.7 TOKEN_FILE=/etc/starling/gateway.token, the
        # token from `starling token create -n starling-multicluster --service-account starling-gateway`.
        \(head(description: "Starling multicluster gateway (cluster \(s.clusterName))", user: s.user))
        EnvironmentFile=/etc/starling/gateway.env
        ExecStart=\(s.binary) gateway --controller \(s.replicas.joined(separator: ",")) \
        --controller-ca-file /etc/starling/controller-ca.crt --token-file ${TOKEN_FILE} \
        --cluster-name \(s.clusterName) --listen-address ${LISTEN}
        \(restartedAndHardened)
        """
    }

    static func proxy(_ s: Settings) -> String {
        """
        # /etc/systemd/system/starling-proxy@.service — one instance per workload:
        #   systemctl enable --now starling-proxy@web   reads /etc/starling/proxy-web.env:
        #   NAMESPACE=… SERVICE_ACCOUNT=… SERVICE=web LISTEN=10.0.1.5 APP_PORT=8080 TOKEN_FILE=/etc/starling/web.token
        # The token comes from `starling token create --service web`; the CA file is the
        # controllers' api.crt. The proxy registers the workload as an endpoint of SERVICE while
        # it runs, and deregisters it when stopped.
        \(head(description: "Starling proxy for workload %i (cluster \(s.clusterName))", user: s.user))
        EnvironmentFile=/etc/starling/proxy-%i.env
        ExecStart=\(s.binary) proxy --controller \(s.replicas.joined(separator: ",")) \
        --controller-ca-file /etc/starling/controller-ca.crt --token-file ${TOKEN_FILE} \
        --namespace ${NAMESPACE} --service-account ${SERVICE_ACCOUNT} --service ${SERVICE} --listen-address ${LISTEN} \
        --app-host ${LISTEN} --app-port ${APP_PORT} --cluster-name \(s.clusterName)
        \(restartedAndHardened)
        """
    }
}
