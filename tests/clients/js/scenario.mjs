// A vendor's JavaScript software on fhir-kit-client (npm) against a real carnet server, driven by
// tests/clients/test_fhir_kit_client.py. Reads on stdin what the test prepared (base URL, bearer
// token, the seeded record, an MHD 4.2.3 ITI-65 bundle), runs each step of the scenario on its own
// (a failing step does not stop the next ones), and prints on stdout one JSON object:
//   steps: { name: { ok, error } }, bodies: every FHIR JSON body received, serverErrors: 5xx,
//   invalid: the bodies the npm "fhir" validator refuses (validate.mjs).
import { Client } from 'fhir-kit-client';
import { invalid } from './validate.mjs';

const RFC3986 = 'urn:ietf:rfc:3986';
const PDSM_ARCHIVED =
  'https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived';
const VISIBILITY =
  'https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument';

// every body the client receives, errors included
const bodies = [];
const serverErrors = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (...args) => {
  const response = await realFetch(...args);
  if (response.status >= 500) serverErrors.push(`${response.status} ${response.url}`);
  if ((response.headers.get('content-type') || '').includes('json')) {
    const text = await response.clone().text();
    if (text) {
      const body = JSON.parse(text);
      if (body && body.resourceType) bodies.push(body);
    }
  }
  return response;
};

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function labels(resource) {
  return (resource.securityLabel || []).flatMap((l) => (l.coding || []).map((c) => c.code));
}

function archived(resource) {
  return (resource.extension || []).some((e) => e.url === PDSM_ARCHIVED && e.valueBoolean === true);
}

async function allPages(client, bundle) {
  const pages = [bundle];
  let page = bundle;
  for (;;) {
    const next = client.nextPage({ bundle: page });
    if (!next) return pages;
    page = await next;
    pages.push(page);
  }
}

function ids(pages) {
  return pages.flatMap((p) => (p.entry || []).map((e) => e.resource.id));
}

function sameSet(a, b) {
  return a.length === b.length && [...a].sort().join() === [...b].sort().join();
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const client = new Client({ baseUrl: input.base, bearerToken: input.token });
  const steps = {};

  async function step(name, run) {
    try {
      await run();
      steps[name] = { ok: true, error: null };
    } catch (err) {
      const detail = err.response ? ` ${JSON.stringify(err.response.data).slice(0, 1500)}` : '';
      steps[name] = { ok: false, error: `${err.message}${detail}` };
    }
  }

  await step('publish', async () => {
    const answer = await client.transaction({ body: input.publication.bundle });
    check(answer.type === 'transaction-response', `type ${answer.type}`);
    const locations = answer.entry.map((e) => e.response.location);
    const docLoc = locations.find((l) => l.includes('/DocumentReference/'));
    const docId = docLoc.split('/DocumentReference/')[1].split('/')[0];
    const doc = await client.read({ resourceType: 'DocumentReference', id: docId });
    check(doc.masterIdentifier.value === input.publication.docUniqueIds[0], 'masterIdentifier');
    const sets = await client.search({
      resourceType: 'List',
      searchParams: {
        patient: input.otherPid,
        identifier: `${RFC3986}|${input.publication.setUniqueId}`,
      },
    });
    check(sets.total === 1, `submission sets found by uniqueId: ${sets.total}`);
    const usual = sets.entry[0].resource.identifier.filter((i) => i.use === 'usual');
    check(usual.length === 1 && usual[0].value === input.publication.setUniqueId, 'usual uniqueId');
    const folders = await client.search({
      resourceType: 'List',
      searchParams: { patient: input.otherPid, code: 'folder' },
    });
    check(folders.total === 1, `folders: ${folders.total}`);
    const folder = folders.entry[0].resource;
    check(
      folder.identifier.some((i) => i.use === 'usual' && i.value === input.publication.folderUniqueId),
      'folder uniqueId',
    );
    check(
      folder.entry.length === 1 && folder.entry[0].item.reference === `DocumentReference/${docId}`,
      'folder entries',
    );
  });

  await step('search_paging', async () => {
    const first = await client.search({
      resourceType: 'DocumentReference',
      searchParams: { patient: input.pid, _count: 2 },
    });
    const pages = await allPages(client, first);
    check(pages.length === 3, `pages: ${pages.length}`);
    check(pages.every((p) => p.total === input.seeded.length), 'total on every page');
    check(sameSet(ids(pages), input.seeded), `ids: ${ids(pages)}`);
  });

  await step('post_search', async () => {
    const first = await client.search({
      resourceType: 'DocumentReference',
      searchParams: { patient: input.pid, _count: 2 },
      options: { postSearch: true },
    });
    const pages = await allPages(client, first);
    check(sameSet(ids(pages), input.seeded), `ids: ${ids(pages)}`);
  });

  await step('count_summary', async () => {
    const bundle = await client.search({
      resourceType: 'DocumentReference',
      searchParams: { patient: input.pid, _summary: 'count' },
    });
    check(bundle.total === input.seeded.length, `total ${bundle.total}`);
    check(!bundle.entry || bundle.entry.length === 0, 'no entries');
  });

  await step('count_zero', async () => {
    const bundle = await client.search({
      resourceType: 'DocumentReference',
      searchParams: { patient: input.pid, _count: 0 },
    });
    check(bundle.total === input.seeded.length, `total ${bundle.total}`);
    check(!bundle.entry || bundle.entry.length === 0, 'no entries');
  });

  await step('read', async () => {
    const doc = await client.read({ resourceType: 'DocumentReference', id: input.seeded[0] });
    check(doc.id === input.seeded[0], 'id');
    check(doc.masterIdentifier.value === input.seededUniqueIds[0], 'masterIdentifier');
    check(doc.subject.reference === `Patient/${input.pid}`, 'subject');
  });

  await step('retrieve_binary', async () => {
    const doc = await client.read({ resourceType: 'DocumentReference', id: input.seeded[0] });
    const url = doc.content[0].attachment.url;
    check(url.startsWith(`${input.base}/Binary/`), `attachment.url ${url}`);
    const binary = await client.read({ resourceType: 'Binary', id: url.split('/').pop() });
    check(binary.resourceType === 'Binary', 'a Binary');
    const data = Buffer.from(binary.data, 'base64');
    check(data.length === doc.content[0].attachment.size, 'size');
    check(data.subarray(0, 8).toString() === '%PDF-1.4', 'content');
  });

  await step('patch_visibility_status', async () => {
    const target = input.seeded[2];
    const hidden = await client.patch({
      resourceType: 'DocumentReference',
      id: target,
      jsonPatch: [
        {
          op: 'add',
          path: '/securityLabel/-',
          value: { coding: [{ system: VISIBILITY, code: 'INVISIBLE_PATIENT' }] },
        },
      ],
    });
    check(labels(hidden).includes('INVISIBLE_PATIENT'), `labels ${labels(hidden)}`);
    const deleted = input.seeded[4];
    const gone = await client.patch({
      resourceType: 'DocumentReference',
      id: deleted,
      jsonPatch: [{ op: 'replace', path: '/status', value: 'entered-in-error' }],
    });
    check(gone.status === 'entered-in-error', `status ${gone.status}`);
    const left = await client.search({
      resourceType: 'DocumentReference',
      searchParams: { patient: input.pid, _count: 50 },
    });
    const leftIds = ids([left]);
    check(!leftIds.includes(deleted) && leftIds.includes(target), `left ${leftIds}`);
  });

  await step('conditional_patch', async () => {
    const target = input.seeded[1];
    const current = await client.read({ resourceType: 'DocumentReference', id: target });
    const ext = { url: PDSM_ARCHIVED, valueBoolean: true };
    const ops = current.extension
      ? [{ op: 'add', path: '/extension/-', value: ext }]
      : [{ op: 'add', path: '/extension', value: [ext] }];
    const identifier = encodeURIComponent(`${RFC3986}|${input.seededUniqueIds[1]}`);
    const done = await client.request(`DocumentReference?identifier=${identifier}`, {
      method: 'PATCH',
      body: ops,
      options: { headers: { 'content-type': 'application/json-patch+json' } },
    });
    check(done.id === target && archived(done), 'archived');
    const only = await client.search({
      resourceType: 'DocumentReference',
      searchParams: { patient: input.pid, isArchived: 'true' },
    });
    check(sameSet(ids([only]), [target]), `isArchived=true: ${ids([only])}`);
  });

  process.stdout.write(JSON.stringify({ steps, bodies, serverErrors, invalid: invalid(bodies) }));
}

await main();
