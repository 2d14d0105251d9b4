// The smallest worker: `{}` to every request, no bindings, no middleware. bench:edge runs it under the same
// `wrangler dev` as the edge, so its latency is what any request costs on this machine before the edge's
// own code runs (the client, wrangler dev's proxy and workerd's dispatch).
export default {
  fetch(): Response {
    return Response.json({})
  },
}
