import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

/**
 * deploy/kubernetes/ and deploy/containers/: what a cluster operator applies. Parsed with a real
 * YAML parser (PyYAML, from Debian's python3-yaml; no YAML parser is among the project's npm
 * packages), then checked for what the farm relies on: probes on the right paths and port,
 * a rolling update that never lowers capacity, a grace period longer than the drain, a
 * disruption budget and a Service that select exactly the Deployment's pods, and keys that
 * come from Secrets.
 */
const root = path.resolve(import.meta.dirname, '../..');
const k8sDir = path.join(root, 'deploy/kubernetes');

type Doc = Record<string, any>;

const PARSE = 'import json, sys, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))';

function parseYaml(text: string, file: string): Promise<Doc[]> {
  return new Promise((resolve, reject) => {
    // Debian's own interpreter, where apt's python3-yaml lives (a python3 earlier on PATH may lack it).
    const child = execFile(existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', ['-c', PARSE], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') reject(new Error('python3 is not installed: apt-get install python3 python3-yaml (the Kubernetes manifests are parsed with PyYAML)'));
        else if (/No module named .?yaml/.test(stderr)) reject(new Error('PyYAML is missing: apt-get install python3-yaml (the Kubernetes manifests are parsed with it)'));
        else reject(new Error(`${file} is not valid YAML: ${stderr.trim().split('\n').slice(-3).join(' ')}`));
        return;
      }
      resolve(JSON.parse(stdout) as Doc[]);
    });
    child.stdin!.end(text);
  });
}

/** Whether every label the selector asks for is on the pod. */
const selects = (selector: Record<string, string>, labels: Record<string, string>) => Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('Kubernetes manifests and the container image', () => {
  const docs: { file: string; doc: Doc }[] = [];
  const find = (kind: string, name?: string) => {
    const found = docs.filter((d) => d.doc.kind === kind && (!name || d.doc.metadata?.name === name));
    if (found.length === 0) throw new Error(`no ${kind}${name ? ` ${name}` : ''} in deploy/kubernetes`);
    return found[0]!.doc;
  };

  beforeAll(async () => {
    for (const file of (await readdir(k8sDir)).filter((f) => f.endsWith('.yaml')).sort()) {
      for (const doc of await parseYaml(await readFile(path.join(k8sDir, file), 'utf8'), file)) docs.push({ file, doc });
    }
  });

  it('parses every file, and the kustomization applies every manifest but the example Secrets', async () => {
    expect(docs.length).toBeGreaterThanOrEqual(7);
    for (const { file, doc } of docs) {
      expect(doc.apiVersion, file).toBeTruthy();
      expect(doc.kind, file).toBeTruthy();
    }
    const kustomization = find('Kustomization');
    const applied = docs.filter((d) => d.doc.kind !== 'Kustomization' && d.file !== 'secrets.example.yaml').map((d) => d.file);
    expect([...kustomization.resources].sort()).toEqual([...new Set(applied)].sort());
    expect(kustomization.resources).not.toContain('secrets.example.yaml');
  });

  it('probes readiness on /readyz and liveness on /healthz, over HTTPS on the port the node listens on', () => {
    const pod = find('Deployment', 'telesalud').spec.template.spec;
    const container = pod.containers[0];
    const env = Object.fromEntries(container.env.filter((e: Doc) => 'value' in e).map((e: Doc) => [e.name, e.value]));
    const named = Object.fromEntries(container.ports.map((p: Doc) => [p.name, p.containerPort]));
    expect(named.https).toBe(Number(env.TELESALUD_PORT));
    const probes = { readiness: container.readinessProbe, liveness: container.livenessProbe, startup: container.startupProbe };
    expect(probes.readiness.httpGet.path).toBe('/readyz');
    expect(probes.liveness.httpGet.path).toBe('/healthz');
    expect(probes.startup.httpGet.path).toBe('/healthz');
    for (const [which, probe] of Object.entries(probes)) {
      expect(probe.httpGet.scheme, which).toBe('HTTPS');
      const port = typeof probe.httpGet.port === 'string' ? named[probe.httpGet.port] : probe.httpGet.port;
      expect(port, `${which} probe port`).toBe(Number(env.TELESALUD_PORT));
    }
    // Readiness must drop a draining pod before its drain delay ends.
    const config = find('ConfigMap', 'telesalud-config').data;
    expect(probes.readiness.periodSeconds * probes.readiness.failureThreshold * 1000).toBeLessThan(Number(config.TELESALUD_DRAIN_DELAY_MS));
  });

  it('rolls out without lowering capacity and gives a stopping pod longer than its drain', () => {
    const deployment = find('Deployment', 'telesalud');
    expect(deployment.spec.strategy.type).toBe('RollingUpdate');
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    expect(deployment.spec.strategy.rollingUpdate.maxSurge).toBeGreaterThanOrEqual(1);
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
    const config = find('ConfigMap', 'telesalud-config').data;
    const drainMs = Number(config.TELESALUD_DRAIN_DELAY_MS) + Number(config.TELESALUD_SHUTDOWN_TIMEOUT_MS);
    expect(drainMs).toBeGreaterThan(0);
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(drainMs);
  });

  it('selects exactly the Deployment\'s pods from the Deployment, the Service and the PodDisruptionBudget', () => {
    const deployment = find('Deployment', 'telesalud');
    const labels = deployment.spec.template.metadata.labels as Record<string, string>;
    expect(selects(deployment.spec.selector.matchLabels, labels)).toBe(true);
    const pdb = find('PodDisruptionBudget');
    expect(pdb.apiVersion).toBe('policy/v1');
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(pdb.spec.maxUnavailable ?? deployment.spec.replicas - pdb.spec.minAvailable).toBe(1);
    const service = find('Service', 'telesalud');
    expect(selects(service.spec.selector, labels)).toBe(true);
    const containerPorts = deployment.spec.template.spec.containers[0].ports.map((p: Doc) => p.name);
    for (const port of service.spec.ports) expect(containerPorts).toContain(port.targetPort);
  });

  it('takes the master key and the audit signing key from Secrets, and every Secret key it names exists in the example', () => {
    const container = find('Deployment', 'telesalud').spec.template.spec.containers[0];
    const fromSecret = Object.fromEntries(container.env.filter((e: Doc) => e.valueFrom?.secretKeyRef).map((e: Doc) => [e.name, e.valueFrom.secretKeyRef]));
    for (const name of ['TELESALUD_MASTER_KEY', 'TELESALUD_AUDIT_SIGNING_KEY', 'TELESALUD_DATABASE_URL', 'TELESALUD_REDIS_URL', 'TELESALUD_ADMIN_TOKEN']) {
      expect(fromSecret[name], name).toBeDefined();
      expect(fromSecret[name].optional, name).not.toBe(true);
    }
    // No secret in plain env values or in the ConfigMap (a path to a mounted Secret file is fine).
    const plain: [string, string][] = [...container.env.filter((e: Doc) => 'value' in e).map((e: Doc) => [e.name, e.value]), ...Object.entries(find('ConfigMap', 'telesalud-config').data as Record<string, string>)];
    expect(plain.filter(([n, v]) => /KEY$|SECRET|TOKEN|DATABASE_URL|REDIS_URL/.test(n) && !v.startsWith('/')).map(([n]) => n)).toEqual([]);
    const examples = docs.filter((d) => d.file === 'secrets.example.yaml').map((d) => d.doc);
    for (const [name, ref] of Object.entries(fromSecret) as [string, Doc][]) {
      const secret = examples.find((s) => s.metadata.name === ref.name);
      expect(secret, `${name}: Secret ${ref.name}`).toBeDefined();
      expect(Object.keys(secret!.stringData), `${name}: key ${ref.key}`).toContain(ref.key);
    }
    const tlsVolume = find('Deployment', 'telesalud').spec.template.spec.volumes.find((v: Doc) => v.secret);
    expect(tlsVolume.secret.secretName).toBe('telesalud-tls');
  });

  it('names only variables telesalud reads', async () => {
    const configSource = await readFile(path.join(root, 'src/config/config.ts'), 'utf8');
    const container = find('Deployment', 'telesalud').spec.template.spec.containers[0];
    const names = [...container.env.map((e: Doc) => e.name), ...Object.keys(find('ConfigMap', 'telesalud-config').data)];
    for (const name of names) expect(configSource, name).toContain(name);
  });

  it('runs as a non-root user on a read-only root filesystem, writing only to its data dir and /tmp', async () => {
    const pod = find('Deployment', 'telesalud').spec.template.spec;
    const container = pod.containers[0];
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    const env = Object.fromEntries(container.env.filter((e: Doc) => 'value' in e).map((e: Doc) => [e.name, e.value]));
    const writable = container.volumeMounts.filter((m: Doc) => !m.readOnly).map((m: Doc) => m.mountPath).sort();
    expect(writable).toEqual([env.TELESALUD_DATA_DIR, '/tmp'].sort());

    // The image agrees: the same user, data dir and port; built in stages, so no compiler or dev dependency ships.
    const containerfile = await readFile(path.join(root, 'deploy/containers/Containerfile'), 'utf8');
    expect(containerfile.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    const lastStage = containerfile.slice(containerfile.lastIndexOf('\nFROM '));
    expect(lastStage).toMatch(new RegExp(`^USER ${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}$`, 'm'));
    expect(lastStage).toContain(`TELESALUD_DATA_DIR=${env.TELESALUD_DATA_DIR}`);
    expect(lastStage).toMatch(new RegExp(`^EXPOSE ${env.TELESALUD_PORT}$`, 'm'));
    expect(lastStage).not.toMatch(/npm (ci|install)/);
    // The breached-password list is read at run time from beside the compiled code (dist/…/../../../src/…).
    const listUrl = /new URL\('([^']+common-passwords\.txt\.br)'/.exec(await readFile(path.join(root, 'src/auth/passwords/breached-list.ts'), 'utf8'))![1]!;
    const atRunTime = path.posix.normalize(path.posix.join('/opt/telesalud/dist/auth/passwords', listUrl));
    expect(lastStage).toContain(` ${atRunTime}`);
  });
});
