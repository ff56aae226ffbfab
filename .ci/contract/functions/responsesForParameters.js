// Spectral ruleset function, given a path item (resolved): every operation that takes one
// of the named parameters (path-level or its own) declares the listed response codes.
// options.parameters: {"If-Match": ["412"], "Idempotency-Key": ["409"]}
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

export default function responsesForParameters(pathItem, options, context) {
  if (pathItem === null || typeof pathItem !== 'object') return [];
  const wanted = (options && options.parameters) || {};
  const shared = Array.isArray(pathItem.parameters) ? pathItem.parameters : [];
  const results = [];
  for (const method of METHODS) {
    const op = pathItem[method];
    if (op === null || typeof op !== 'object') continue;
    const params = [...shared, ...(Array.isArray(op.parameters) ? op.parameters : [])];
    const responses = op.responses && typeof op.responses === 'object' ? op.responses : {};
    for (const p of params) {
      if (!p || typeof p !== 'object') continue;
      for (const code of wanted[p.name] || []) {
        if (!(code in responses)) {
          results.push({
            message: `${method.toUpperCase()} takes ${p.name} and must declare a ${code} response`,
            path: [...context.path, method, 'responses'],
          });
        }
      }
    }
  }
  return results;
}
