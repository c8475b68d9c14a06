// Validates FHIR R4 resources with the npm "fhir" package (lantanagroup): reads a JSON array of
// resources on stdin, prints a JSON array of the invalid ones (index, resourceType, errors).
// Used by tests/clients/validate.py and by scenario.mjs.
import fhirpkg from 'fhir';

const { Fhir } = fhirpkg;
const fhir = new Fhir();

export function fhirErrors(resource) {
  const result = fhir.validate(resource, { errorOnUnexpected: true });
  return result.messages.filter((m) => m.severity === 'error' || m.severity === 'fatal');
}

export function invalid(resources) {
  const out = [];
  resources.forEach((resource, index) => {
    const errors = fhirErrors(resource);
    if (errors.length) out.push({ index, resourceType: resource.resourceType, errors });
  });
  return out;
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const resources = JSON.parse(await readStdin());
  process.stdout.write(JSON.stringify(invalid(resources)));
}
