/** The companion's plugin id, the server's names it reads, and its settings. */
export const PLUGIN_ID = 'collab-kernels-labextension:plugin';
export const ROOM_EVENT_SCHEMA = 'https://collab-kernels.jupyter.org/rooms/v1';
export const EXECUTION_MAP = 'execution';

export interface Settings {
  inputPrompts: boolean;
  viewOnly: boolean;
  runQueue: boolean;
  notifyRuns: boolean;
  notifyRunSeconds: number;
  pollSeconds: number;
  roomNotifications: boolean;
}

export const DEFAULTS: Settings = {
  inputPrompts: true,
  viewOnly: true,
  runQueue: true,
  notifyRuns: true,
  notifyRunSeconds: 30,
  pollSeconds: 10,
  roomNotifications: true
};
