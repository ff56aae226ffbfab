// Spectral ruleset function: every 4xx/5xx response of an operation is a $ref to the
// shared component named for its status code (options.components: {"401": "Unauthorized", ...}).
// Runs on the unresolved document so the $ref itself can be checked.
export default function responseComponentRefs(responses, options, context) {
  if (responses === null || typeof responses !== 'object') return [];
  const components = (options && options.components) || {};
  const results = [];
  for (const [code, response] of Object.entries(responses)) {
    if (!/^[45]/.test(code)) continue;
    const want = components[code];
    const ref = response && typeof response === 'object' ? response.$ref : undefined;
    if (!want) {
      results.push({
        message: `${code} has no shared problem response component; add one to components.responses and to this rule`,
        path: [...context.path, code],
      });
      continue;
    }
    const wantRef = `#/components/responses/${want}`;
    if (ref !== wantRef) {
      results.push({
        message: `${code} must be "$ref: '${wantRef}'"${ref ? ` (found '${ref}')` : ' (found an inline response)'}`,
        path: [...context.path, code],
      });
    }
  }
  return results;
}
