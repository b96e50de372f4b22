import NIOCore
import NIOHPACK
import NIOHTTP2
@testable import StarlingProxy
import Testing

/// The `grpc_status` a gRPC call's response is counted with.
struct GRPCStatusTests {
    private func trailers(_ fields: [(String, String)], endStream: Bool = true) -> HTTP2Frame.FramePayload {
        .headers(.init(headers: HPACKHeaders(fields), endStream: endStream))
    }

    @Test func aCallIsKnownByItsContentType() {
        #expect(GRPCStatus.isCall(["content-type": "application/grpc"]))
        #expect(GRPCStatus.isCall(["content-type": "application/grpc+proto"]))
        #expect(GRPCStatus.isCall(["content-type": "Application/GRPC; charset=utf-8"]))
        // gRPC-Web carries its status in the body: not a call whose trailers say how it went.
        #expect(!GRPCStatus.isCall(["content-type": "application/grpc-web+proto"]))
        #expect(!GRPCStatus.isCall(["content-type": "application/grpcx"]))
        #expect(!GRPCStatus.isCall(["content-type": "application/json"]))
        #expect(!GRPCStatus.isCall([:]))
    }

    @Test func theStatusComesFromTheTrailersAndStaysBounded() {
        #expect(GRPCStatus.ofResponse(httpStatus: 200, ending: trailers([("grpc-status", "0")])) == 0)
        #expect(GRPCStatus.ofResponse(httpStatus: 200, ending: trailers([("grpc-status", "5"), ("grpc-message", "no")])) == 5)
        // A trailers-only answer is its head.
        #expect(
            GRPCStatus.ofResponse(
                httpStatus: 200, ending: trailers([(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "7")])) == 7)
        // Outside 0–16, or not a number: UNKNOWN, as a gRPC client reads it; never a new label value.
        #expect(GRPCStatus.ofResponse(httpStatus: 200, ending: trailers([("grpc-status", "17")])) == GRPCStatus.unknown)
        #expect(GRPCStatus.ofResponse(httpStatus: 200, ending: trailers([("grpc-status", "oops")])) == GRPCStatus.unknown)
    }

    @Test func aResponseThatEndsWithoutAStatusIsInternalAndANon200OneHasNone() {
        let body = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(.init(string: "x")), endStream: true))
        #expect(GRPCStatus.ofResponse(httpStatus: 200, ending: body) == GRPCStatus.internalError)
        #expect(GRPCStatus.ofResponse(httpStatus: 200, ending: trailers([("x-other", "1")])) == GRPCStatus.internalError)
        // A 503 says how the call failed; gRPC clients derive UNAVAILABLE from it.
        #expect(GRPCStatus.ofResponse(httpStatus: 503, ending: trailers([("grpc-status", "0")])) == nil)
    }
}
