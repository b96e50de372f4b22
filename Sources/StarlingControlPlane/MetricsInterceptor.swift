import GRPCCore
import Metrics

/// Counts API calls by method and outcome: `starling_controller_requests_total`.
struct MetricsInterceptor: ServerInterceptor {
    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.fullyQualifiedMethod
        do {
            let response = try await next(request, context)
            let code: String
            switch response.accepted {
            case .success: code = "ok"
            case .failure(let error): code = "\(error.code)"
            }
            Counter(label: "starling_controller_requests_total", dimensions: [("method", method), ("code", code)]).increment()
            return response
        } catch let error as RPCError {
            Counter(label: "starling_controller_requests_total", dimensions: [("method", method), ("code", "\(error.code)")]).increment()
            throw error
        }
    }
}
