@testable import StarlingCLI
import StarlingMulticluster
import Testing

/// Which address a controller replica serves the multicluster gateway on, from the gateway
/// Service's list (one address per replica).
struct GatewayAddressTests {
    @Test func aReplicaServesTheGatewayOnItsOwnListedAddress() {
        #expect(GatewaySupervisor.servedAddress(listed: "10.0.0.1, 10.0.0.2,10.0.0.3", ownHost: "10.0.0.2") == "10.0.0.2")
        #expect(GatewaySupervisor.servedAddress(listed: nil, ownHost: "10.0.0.2") == "10.0.0.2")
        #expect(GatewaySupervisor.servedAddress(listed: "192.0.2.7", ownHost: "10.0.0.2") == "192.0.2.7", "the only one listed")
        #expect(GatewaySupervisor.servedAddress(listed: "10.0.0.1,10.0.0.3", ownHost: "10.0.0.2") == nil, "others serve it")
    }

    @Test func aReplicaListeningOnEveryAddressPicksTheListedOneThatIsLocal() {
        // systemd units run the controller on 0.0.0.0; 127.0.0.1 is an address of every host.
        #expect(GatewaySupervisor.servedAddress(listed: "192.0.2.7,127.0.0.1", ownHost: "0.0.0.0") == "127.0.0.1")
        #expect(GatewaySupervisor.servedAddress(listed: "192.0.2.7,192.0.2.8", ownHost: "0.0.0.0") == nil)
    }

    @Test func gatewayListsAreTrimmedAndSkipEmptyEntries() {
        #expect(MirrorLabels.gatewayHosts(" 10.0.0.1, ,10.0.0.2 ,") == ["10.0.0.1", "10.0.0.2"])
    }
}
