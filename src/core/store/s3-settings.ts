// Where an S3 store is and how to sign in to it: the bucket and prefix of an `s3://BUCKET[/PREFIX]` URL, and
// the endpoint, region and credentials from the places every S3 tool reads them (the AWS_* variables, then
// a profile of ~/.aws/credentials and ~/.aws/config), so a user's existing set-up works unchanged.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** A bucket and the key prefix the store keeps its objects under ('' or ending in '/'). */
export interface S3Location {
  bucket: string;
  prefix: string;
}

export interface S3Connection {
  endpoint: URL;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export const DEFAULT_REGION = 'us-east-1';

/** `s3://BUCKET[/PREFIX]` as a location; throws on anything else. */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new Error(`not an S3 store: ${url} (expected s3://BUCKET[/PREFIX], a bucket name in lower case)`);
  return { bucket: m[1] as string, prefix: normalizePrefix(m[2] ?? '') };
}

/** A prefix with no leading slash and, unless empty, one trailing slash: "a/b" and "/a/b/" are both "a/b/". */
export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}

/**
 * The endpoint, region and credentials, each from the first place that has it: the environment
 * (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_REGION or AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), then the profile AWS_PROFILE (else "default") of the shared
 * credentials and config files. Without an endpoint, AWS S3 in the region.
 */
export function resolveS3Connection(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): S3Connection {
  const profileName = env.AWS_PROFILE ?? 'default';
  const credentialsFile = env.AWS_SHARED_CREDENTIALS_FILE ?? join(home, '.aws', 'credentials');
  const configFile = env.AWS_CONFIG_FILE ?? join(home, '.aws', 'config');
  // In the credentials file a section is the profile's name; in the config file it is "profile NAME",
  // except the default profile's, which is "default" in both.
  const fromCredentials = readIni(credentialsFile)[profileName] ?? {};
  const fromConfig = readIni(configFile)[profileName === 'default' ? 'default' : `profile ${profileName}`] ?? {};
  const profile = { ...fromConfig, ...fromCredentials };
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || profile.region || DEFAULT_REGION;
  const accessKeyId = env.AWS_ACCESS_KEY_ID || profile.aws_access_key_id;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY || profile.aws_secret_access_key;
  if (!accessKeyId || !secretAccessKey) {
    throw new Error(`no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile "${profileName}" in ${credentialsFile} aws_access_key_id and aws_secret_access_key`);
  }
  // A session token belongs with the key it came with: the environment's only with the environment's key.
  const sessionToken = env.AWS_ACCESS_KEY_ID ? env.AWS_SESSION_TOKEN : profile.aws_session_token;
  const endpointText = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || profile.endpoint_url || `https://s3.${region}.amazonaws.com`;
  let endpoint: URL;
  try {
    endpoint = new URL(endpointText);
  } catch {
    throw new Error(`the S3 endpoint is not a URL: ${endpointText}`);
  }
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') throw new Error(`the S3 endpoint must be http or https: ${endpointText}`);
  return { endpoint, region, accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
}

/** The sections of an INI file (the AWS CLI's dialect: `[section]`, `key = value`, `#` and `;` comments); {} when there is none. */
function readIni(file: string): Record<string, Record<string, string>> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  const sections: Record<string, Record<string, string>> = {};
  let current: Record<string, string> | null = null;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (section) {
      current = sections[section[1] as string] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (current && eq > 0) current[line.slice(0, eq).trim().toLowerCase()] = line.slice(eq + 1).trim();
  }
  return sections;
}
