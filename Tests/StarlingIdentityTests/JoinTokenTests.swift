import Crypto
import Foundation
import StarlingCore
import Testing

@testable import StarlingIdentity

@Suite("Join tokens")
struct JoinTokenTests {
    let key = SymmetricKey(size: .bits256)
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func claims(audience: String = JoinToken.Audience.join, lifetime: TimeInterval = 3600) -> JoinToken.Claims {
        JoinToken.Claims(
            namespace: "test",
            serviceAccount: "web",
            lifetime: lifetime,
            now: now,
            audience: audience,
            cluster: "workload1"
        )
    }

    @Test("a signed token verifies and returns its claims")
    func roundTrip() throws {
        let original = claims()
        let token = JoinToken.sign(original, key: key)
        #expect(token.split(separator: ".").count == 3)
        let verified = try JoinToken.verify(
            token,
            key: key,
            audience: JoinToken.Audience.join,
            now: now.addingTimeInterval(10)
        )
        #expect(verified == original)
        #expect(verified.identity() == MeshIdentity(namespace: "test", serviceAccount: "web"))
        #expect(verified.expiresAt == verified.issuedAt + 3600)
        #expect(!verified.id.isEmpty)
    }

    @Test("the header is HS256/JWT and the claims use the short JWT names")
    func wireFormat() throws {
        let token = JoinToken.sign(claims(), key: key)
        let parts = token.split(separator: ".")
        let header = try #require(JoinToken.decodeBase64URL(parts[0]))
        #expect(String(decoding: header, as: UTF8.self) == #"{"alg":"HS256","typ":"JWT"}"#)
        let payload = try #require(JoinToken.decodeBase64URL(parts[1]))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any])
        #expect(Set(object.keys) == ["ns", "sa", "iat", "exp", "jti", "aud", "cluster"])
        #expect(object["aud"] as? String == "starling-join")
        #expect(!token.contains("="))
    }

    @Test("an expired token is refused, saying when it expired")
    func expired() {
        let token = JoinToken.sign(claims(lifetime: 60), key: key)
        let error = expectIdentityError(.tokenExpired) {
            try JoinToken.verify(token, key: key, audience: JoinToken.Audience.join, now: now.addingTimeInterval(61))
        }
        #expect(error?.message.contains("expired at 2027-01-15T08:01:00Z") == true)
    }

    @Test("a token signed with another key is refused")
    func otherKey() {
        let token = JoinToken.sign(claims(), key: SymmetricKey(size: .bits256))
        expectIdentityError(.tokenInvalid) {
            try JoinToken.verify(token, key: key, audience: JoinToken.Audience.join, now: now)
        }
    }

    @Test("a token whose claims were edited is refused")
    func editedClaims() throws {
        let token = JoinToken.sign(claims(), key: key)
        let parts = token.split(separator: ".").map(String.init)
        var forgedClaims = claims()
        forgedClaims.serviceAccount = "admin"
        let forgedPayload = JoinToken.sign(forgedClaims, key: SymmetricKey(size: .bits256)).split(separator: ".")[1]
        let forged = [parts[0], String(forgedPayload), parts[2]].joined(separator: ".")
        expectIdentityError(.tokenInvalid) {
            try JoinToken.verify(forged, key: key, audience: JoinToken.Audience.join, now: now)
        }
    }

    @Test("a token with a flipped signature character is refused")
    func flippedSignature() {
        // Flip the signature's first character: its last one may only carry base64 padding bits,
        // which decode to the same MAC.
        var parts = JoinToken.sign(claims(), key: key).split(separator: ".").map(String.init)
        let first = parts[2].removeFirst()
        parts[2] = (first == "A" ? "B" : "A") + parts[2]
        let token = parts.joined(separator: ".")
        expectIdentityError(.tokenInvalid) {
            try JoinToken.verify(token, key: key, audience: JoinToken.Audience.join, now: now)
        }
    }

    @Test("a token for another audience is refused")
    func wrongAudience() {
        let token = JoinToken.sign(claims(audience: JoinToken.Audience.link), key: key)
        let error = expectIdentityError(.tokenInvalid) {
            try JoinToken.verify(token, key: key, audience: JoinToken.Audience.join, now: now)
        }
        #expect(error?.message.contains("starling-link") == true)
        #expect(throws: Never.self) {
            try JoinToken.verify(token, key: key, audience: JoinToken.Audience.link, now: now)
        }
    }

    @Test("alg none and other algorithms are refused")
    func otherAlgorithms() throws {
        let token = JoinToken.sign(claims(), key: key)
        let parts = token.split(separator: ".").map(String.init)
        for alg in ["none", "HS512", "RS256"] {
            let header = JoinToken.base64URL(Array(#"{"alg":"\#(alg)","typ":"JWT"}"#.utf8))
            let forged = [header, parts[1], parts[2]].joined(separator: ".")
            let error = expectIdentityError(.tokenInvalid) {
                try JoinToken.verify(forged, key: key, audience: JoinToken.Audience.join, now: now)
            }
            #expect(error?.message.contains(alg) == true)
        }
        let unsigned = [JoinToken.base64URL(Array(#"{"alg":"none"}"#.utf8)), parts[1], ""].joined(separator: ".")
        expectIdentityError(.tokenInvalid) {
            try JoinToken.verify(unsigned, key: key, audience: JoinToken.Audience.join, now: now)
        }
    }

    @Test("garbage is refused as invalid", arguments: ["", "abc", "a.b", "a.b.c", "....", "eyJ.eyJ.sig!"])
    func garbage(token: String) {
        expectIdentityError(.tokenInvalid) {
            try JoinToken.verify(token, key: key, audience: JoinToken.Audience.join, now: now)
        }
    }

    @Test("surrounding whitespace (a token pasted from a file) is tolerated")
    func whitespace() throws {
        let token = JoinToken.sign(claims(), key: key)
        #expect(
            try JoinToken.verify(" \(token)\n", key: key, audience: JoinToken.Audience.join, now: now).serviceAccount
                == "web"
        )
    }
}
