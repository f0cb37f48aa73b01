import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfigFile } from '../../src/config/load.js';
import { parse as parseYaml } from 'yaml';
import { arr, obj, readYaml, readYamlDocuments, ROOT } from './support.js';

interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown>;
  spec: Record<string, unknown>;
  data?: Record<string, string>;
}

const DIR = 'deploy/k8s';
const files = readdirSync(`${ROOT}${DIR}`).filter(
  (f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml',
);
const manifests: Manifest[] = files.flatMap((file) =>
  readYamlDocuments(`${DIR}/${file}`).map((doc) => {
    const m = obj(doc, file);
    return {
      file,
      apiVersion: String(m.apiVersion),
      kind: String(m.kind),
      metadata: obj(m.metadata, `${file} metadata`),
      spec: m.kind === 'ConfigMap' ? {} : obj(m.spec, `${file} spec`),
      data: m.data as Record<string, string> | undefined,
    };
  }),
);

function find(kind: string, name: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in ${DIR}`);
  return found;
}

const API_VERSIONS: Record<string, string> = {
  ConfigMap: 'v1',
  Service: 'v1',
  Deployment: 'apps/v1',
  StatefulSet: 'apps/v1',
  HorizontalPodAutoscaler: 'autoscaling/v2',
  PodDisruptionBudget: 'policy/v1',
};

function matches(selector: Record<string, unknown>, labels: Record<string, unknown>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The gateway config held by a ConfigMap key, parsed and validated as the gateway does. */
function configFrom(configMap = find('ConfigMap', 'atrium-config'), key = 'atrium.yaml') {
  const text = configMap.data?.[key];
  const where = `ConfigMap ${String(configMap.metadata.name)}/${key}`;
  if (text === undefined) throw new Error(`${where} is missing`);
  return parseConfigFile(parseYaml(text, { uniqueKeys: true }), where);
}

function containerOf(deployment: Manifest) {
  const template = obj(deployment.spec.template, 'template');
  const pod = obj(template.spec, 'pod spec');
  const [container] = arr(pod.containers, 'containers').map((c) => obj(c, 'container'));
  return { template, pod, container: container! };
}

describe('Kubernetes manifests (deploy/k8s)', () => {
  it('hold the expected kinds, each with a current apiVersion, and kustomize lists them all', () => {
    expect(manifests.map((m) => `${m.kind}/${String(m.metadata.name)}`).sort()).toEqual(
      [
        'ConfigMap/atrium-config',
        'Deployment/atrium-gateway',
        'Deployment/atrium-model-server',
        'HorizontalPodAutoscaler/atrium-gateway',
        'PodDisruptionBudget/atrium-gateway',
        'Service/atrium-gateway',
        'Service/atrium-model-server',
        'StatefulSet/atrium-redis',
        'Service/atrium-redis',
      ].sort(),
    );
    for (const m of manifests)
      expect(m.apiVersion, `${m.kind} ${m.file}`).toBe(API_VERSIONS[m.kind]);
    const kustomization = obj(readYaml(`${DIR}/kustomization.yaml`), 'kustomization');
    expect(arr(kustomization.resources, 'resources').slice().sort()).toEqual(files.slice().sort());
  });

  for (const name of ['atrium-gateway', 'atrium-model-server']) {
    it(`${name}: selector matches the pod labels; non-root, read-only, resources, probes`, () => {
      const deployment = find('Deployment', name);
      const selector = obj(obj(deployment.spec.selector, 'selector').matchLabels, 'matchLabels');
      const { template, pod, container } = containerOf(deployment);
      const labels = obj(obj(template.metadata, 'template metadata').labels, 'labels');
      expect(Object.keys(selector).length).toBeGreaterThan(0);
      expect(matches(selector, labels)).toBe(true);

      const podSecurity = obj(pod.securityContext, 'pod securityContext');
      expect(podSecurity.runAsNonRoot).toBe(true);
      expect(podSecurity.runAsUser).toBe(1000); // the image's `node` user
      expect(obj(podSecurity.seccompProfile, 'seccomp').type).toBe('RuntimeDefault');
      expect(pod.automountServiceAccountToken).toBe(false);
      const security = obj(container.securityContext, 'container securityContext');
      expect(security.readOnlyRootFilesystem).toBe(true);
      expect(security.allowPrivilegeEscalation).toBe(false);
      expect(obj(security.capabilities, 'capabilities').drop).toEqual(['ALL']);
      // A read-only root needs a writable /tmp (tsx's cache).
      const mounts = arr(container.volumeMounts, 'volumeMounts').map((v) => obj(v, 'mount'));
      const tmp = mounts.find((m) => m.mountPath === '/tmp');
      expect(tmp).toBeDefined();
      const volumes = arr(pod.volumes, 'volumes').map((v) => obj(v, 'volume'));
      expect(volumes.find((v) => v.name === tmp!.name)?.emptyDir).toBeDefined();

      const resources = obj(container.resources, 'resources');
      for (const part of ['requests', 'limits']) {
        const r = obj(resources[part], part);
        expect(r.cpu, `${part}.cpu`).toBeDefined();
        expect(r.memory, `${part}.memory`).toBeDefined();
      }
      expect(String(container.image)).toMatch(/:[0-9][\w.-]*$/); // pinned, never :latest
      const ports = arr(container.ports, 'ports').map((p) => obj(p, 'port'));
      for (const probe of ['livenessProbe', 'readinessProbe']) {
        const http = obj(obj(container[probe], probe).httpGet, `${probe}.httpGet`);
        expect(ports.map((p) => p.name)).toContain(http.port);
      }
    });
  }

  it('the gateway probes /healthz (alive) and /readyz (ready) and drains before it is killed', () => {
    const deployment = find('Deployment', 'atrium-gateway');
    const { pod, container } = containerOf(deployment);
    const path = (probe: string) => obj(obj(container[probe], probe).httpGet, probe).path;
    expect(path('livenessProbe')).toBe('/healthz');
    expect(path('startupProbe')).toBe('/healthz');
    expect(path('readinessProbe')).toBe('/readyz');
    const strategy = obj(obj(deployment.spec.strategy, 'strategy').rollingUpdate, 'rollingUpdate');
    expect(strategy.maxUnavailable).toBe(0);

    const config = configFrom();
    const preStop = arr(
      obj(obj(obj(container.lifecycle, 'lifecycle').preStop, 'preStop').exec, 'exec').command,
      'command',
    );
    const preStopSeconds = Number(preStop[1]);
    expect(Number(pod.terminationGracePeriodSeconds)).toBeGreaterThan(
      preStopSeconds + config.server.drainTimeoutMs / 1000,
    );
  });

  it('the gateway reads the ConfigMap it mounts, and that config validates', () => {
    const { pod, container } = containerOf(find('Deployment', 'atrium-gateway'));
    const env = arr(container.env, 'env').map((e) => obj(e, 'env var'));
    const configPath = String(env.find((e) => e.name === 'ATRIUM_CONFIG')?.value);
    const mounts = arr(container.volumeMounts, 'volumeMounts').map((v) => obj(v, 'mount'));
    const mount = mounts.find((m) => configPath.startsWith(`${String(m.mountPath)}/`));
    expect(mount?.readOnly).toBe(true);
    const volume = arr(pod.volumes, 'volumes')
      .map((v) => obj(v, 'volume'))
      .find((v) => v.name === mount!.name);
    const configMapName = obj(volume!.configMap, 'configMap volume').name;
    const configMap = find('ConfigMap', String(configMapName));
    const key = configPath.slice(String(mount!.mountPath).length + 1);
    const config = configFrom(configMap, key);

    // Ports in the config are the container's ports; the model backend is the Service.
    const ports = arr(container.ports, 'ports').map((p) => obj(p, 'port'));
    expect(ports.find((p) => p.name === 'http')?.containerPort).toBe(config.server.port);
    expect(ports.find((p) => p.name === 'metrics')?.containerPort).toBe(
      config.telemetry.metrics.port,
    );
    const modelService = find('Service', 'atrium-model-server');
    const modelPort = obj(arr(modelService.spec.ports, 'ports')[0], 'port').port;
    expect(config.inference.backends.models?.url).toBe(
      `http://atrium-model-server:${String(modelPort)}`,
    );
    // Secrets come from a Secret, never from the manifests.
    for (const name of ['DATABASE_URL', 'REDIS_URL']) {
      const variable = env.find((e) => e.name === name);
      expect(variable?.value).toBeUndefined();
      expect(obj(obj(variable!.valueFrom, 'valueFrom').secretKeyRef, 'secretKeyRef').name).toBe(
        'atrium-secrets',
      );
    }
  });

  it('each Service selects its Deployment’s pods on a named container port; metrics are not in it', () => {
    for (const name of ['atrium-gateway', 'atrium-model-server']) {
      const service = find('Service', name);
      const { template, container } = containerOf(find('Deployment', name));
      const labels = obj(obj(template.metadata, 'metadata').labels, 'labels');
      expect(matches(obj(service.spec.selector, 'selector'), labels)).toBe(true);
      const portNames = arr(container.ports, 'ports').map((p) => obj(p, 'port').name);
      for (const port of arr(service.spec.ports, 'service ports').map((p) => obj(p, 'port'))) {
        expect(portNames).toContain(port.targetPort);
        expect(port.targetPort).not.toBe('metrics');
      }
    }
  });

  it('Redis persists: append-only file on a volume claim, served by its own Service', () => {
    const redis = find('StatefulSet', 'atrium-redis');
    const { template, pod, container } = containerOf(redis);
    expect(arr(container.args, 'args').join(' ')).toMatch(/--appendonly yes/);
    const claims = arr(redis.spec.volumeClaimTemplates, 'volumeClaimTemplates').map((c) =>
      obj(obj(c, 'claim').metadata, 'claim metadata'),
    );
    const mounts = arr(container.volumeMounts, 'volumeMounts').map((v) => obj(v, 'mount'));
    expect(mounts.find((m) => m.mountPath === '/data')?.name).toBe(claims[0]?.name);
    expect(obj(pod.securityContext, 'securityContext').runAsNonRoot).toBe(true);
    expect(obj(container.securityContext, 'securityContext').readOnlyRootFilesystem).toBe(true);
    const service = find('Service', 'atrium-redis');
    const labels = obj(obj(template.metadata, 'metadata').labels, 'labels');
    expect(matches(obj(service.spec.selector, 'selector'), labels)).toBe(true);
  });

  it('Prometheus scrapes the metrics port the config serves /metrics on (not the main port)', () => {
    const { template } = containerOf(find('Deployment', 'atrium-gateway'));
    const annotations = obj(obj(template.metadata, 'metadata').annotations, 'annotations');
    const config = configFrom();
    expect(annotations['prometheus.io/port']).toBe(String(config.telemetry.metrics.port));
    expect(annotations['prometheus.io/path']).toBe('/metrics');
    expect(config.telemetry.metrics.onMainPort).toBe('off');
  });

  it('the HPA and the PDB target the gateway Deployment and leave pods to serve', () => {
    const deployment = find('Deployment', 'atrium-gateway');
    const hpa = find('HorizontalPodAutoscaler', 'atrium-gateway');
    const target = obj(hpa.spec.scaleTargetRef, 'scaleTargetRef');
    expect(target).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'atrium-gateway' });
    const min = Number(hpa.spec.minReplicas);
    expect(min).toBeGreaterThanOrEqual(2);
    expect(Number(hpa.spec.maxReplicas)).toBeGreaterThan(min);
    const metric = obj(arr(hpa.spec.metrics, 'metrics')[0], 'metric');
    expect(obj(metric.resource, 'resource').name).toBe('cpu'); // needs requests.cpu, checked above

    const pdb = find('PodDisruptionBudget', 'atrium-gateway');
    const pdbSelector = obj(obj(pdb.spec.selector, 'selector').matchLabels, 'matchLabels');
    const deploymentSelector = obj(obj(deployment.spec.selector, 'selector').matchLabels, 'labels');
    expect(pdbSelector).toEqual(deploymentSelector);
    // A disruption never takes the gateway below one serving pod.
    expect(Number(pdb.spec.maxUnavailable)).toBeLessThan(min);
  });
});
