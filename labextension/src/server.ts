/** The collab_kernels server's REST API, as this user. */
import { ServerConnection } from '@jupyterlab/services';

import { Permissions } from './logic';

export const serverSettings = ServerConnection.makeSettings();

export async function api(path: string, init: RequestInit = {}): Promise<any> {
  const url = serverSettings.baseUrl.replace(/\/$/, '') + path;
  const response = await ServerConnection.makeRequest(url, init, serverSettings);
  const text = await response.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  if (!response.ok) {
    const message = (body && (body.message || body.reason)) || response.statusText;
    const error = new Error(`${response.status}: ${message}`) as Error & { status?: number };
    error.status = response.status;
    throw error;
  }
  return body;
}

export async function fetchPermissions(): Promise<Permissions | null> {
  const asked = { contents: ['read', 'write'], kernels: ['read', 'write', 'execute'] };
  try {
    const me = await api(`/api/me?permissions=${encodeURIComponent(JSON.stringify(asked))}`);
    return (me && me.permissions) || null;
  } catch (err) {
    console.warn('collab_kernels: could not read this user\'s permissions', err);
    return null;
  }
}
