import type { Client } from "graphql-ws";

/** The signed-in viewer, token and socket that every view is given. */
export interface Session {
  token: string;
  viewer: { email: string; isAdmin: boolean };
  /** One graphql-ws socket shared by every subscription of the tab. */
  socket: Client;
}

export interface View {
  element: HTMLElement;
  /** Called each time the view's tab is opened. */
  show?: () => void;
  /** Stops the view's subscriptions; called at sign-out. */
  dispose: () => void;
}
