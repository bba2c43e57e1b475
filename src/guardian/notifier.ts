// Delivery of guardian notices by e-mail (SMTP, nodemailer) and by
// webhook. Deliveries run in the background so that a slow mail server or
// receiver never delays a guardian pass; `drain` waits for them.
import { createHmac } from "node:crypto";

import nodemailer, { type Transporter } from "nodemailer";

import {
  redactUrl,
  redactUrlPasswords,
  type NotificationConfig,
} from "../config";
import type { Logger } from "../logger";
import { noticeSubject, noticeText, type Notice } from "./notices";

/** Header that carries the HMAC-SHA256 of a webhook body. */
export const SIGNATURE_HEADER = "x-pulse-signature";

/** Timeout of one webhook request. */
const WEBHOOK_TIMEOUT_MS = 10_000;

export interface Recipients {
  emails: string[];
  webhookUrls: string[];
}

/** Returns the signature header value of a body: `sha256=<hex>`. */
export function signBody(secret: string, body: string): string {
  return "sha256=" + createHmac("sha256", secret).update(body).digest("hex");
}

export class Notifier {
  private readonly mail: Transporter | null;
  private readonly pending = new Set<Promise<void>>();
  private warnedNoSecret = false;

  constructor(
    private readonly config: NotificationConfig,
    private readonly logger: Logger,
  ) {
    this.mail = config.smtpUrl
      ? nodemailer.createTransport(config.smtpUrl)
      : null;
  }

  /** Starts delivering a notice to every recipient. */
  send(notice: Notice, recipients: Recipients): void {
    const deliveries: Promise<void>[] = [];
    if (recipients.emails.length > 0 && this.mail) {
      deliveries.push(this.sendEmail(notice, recipients.emails));
    }
    for (const url of recipients.webhookUrls) {
      deliveries.push(this.sendWebhook(notice, url));
    }
    for (const delivery of deliveries) {
      this.pending.add(delivery);
      void delivery.finally(() => this.pending.delete(delivery));
    }
  }

  /**
   * Waits for every delivery under way, retries included, for at most
   * timeoutMs, so that a dead receiver cannot hold up a shutdown. Returns
   * false when deliveries were still under way at the timeout.
   */
  async drain(timeoutMs = 15_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.logger.warn(
          { deliveries: this.pending.size },
          "guardian notices still under way at shutdown are abandoned",
        );
        return false;
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise((resolve) => {
        timer = setTimeout(resolve, left);
      });
      await Promise.race([Promise.allSettled([...this.pending]), timeout]);
      clearTimeout(timer);
    }
    return true;
  }

  close(): void {
    this.mail?.close();
  }

  private async sendEmail(notice: Notice, to: string[]): Promise<void> {
    try {
      await this.mail!.sendMail({
        from: this.config.smtpFrom,
        to,
        subject: noticeSubject(notice),
        text: noticeText(notice),
      });
      this.logger.info(
        { kind: notice.kind, queue: notice.queue, recipients: to.length },
        "guardian notice e-mailed",
      );
    } catch (error) {
      this.logger.error(
        { err: error, kind: notice.kind, queue: notice.queue },
        "sending a guardian notice by e-mail failed",
      );
    }
  }

  private async sendWebhook(notice: Notice, url: string): Promise<void> {
    const secret = this.config.webhookSecret;
    if (!secret) {
      if (!this.warnedNoSecret) {
        this.warnedNoSecret = true;
        this.logger.warn(
          "GUARDIAN_WEBHOOK_SECRET is not set, so no webhook notice is sent",
        );
      }
      return;
    }
    const body = JSON.stringify(notice);
    const { webhookAttempts, webhookBackoffMs } = this.config;
    for (let attempt = 1; attempt <= webhookAttempts; attempt += 1) {
      const outcome = await postOnce(url, body, signBody(secret, body));
      if (outcome === "delivered") return;
      const fields = {
        url: redactUrl(url),
        kind: notice.kind,
        queue: notice.queue,
        attempt,
      };
      if (outcome === "rejected" || attempt === webhookAttempts) {
        this.logger.error(fields, "webhook notice not delivered; giving up");
        return;
      }
      const delayMs = webhookBackoffMs * 2 ** (attempt - 1);
      this.logger.warn(
        { ...fields, retryInMs: delayMs, reason: outcome },
        "webhook notice failed; retrying",
      );
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/**
 * POSTs once. A 2xx reply is delivered; a 4xx other than 408 and 429
 * means the receiver rejects the body, so retrying cannot help.
 */
async function postOnce(
  url: string,
  body: string,
  signature: string,
): Promise<"delivered" | "rejected" | string> {
  try {
    const { target, authorization } = splitCredentials(url);
    const response = await fetch(target, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        [SIGNATURE_HEADER]: signature,
        ...(authorization ? { authorization } : {}),
      },
      body,
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
    });
    await response.arrayBuffer().catch(() => undefined);
    if (response.ok) return "delivered";
    const status = response.status;
    if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
      return "rejected";
    }
    return `HTTP ${status}`;
  } catch (error) {
    return redactUrlPasswords((error as Error).message);
  }
}

/**
 * Moves the user and password of a URL into a Basic Authorization header,
 * because fetch rejects a URL that contains credentials.
 */
export function splitCredentials(raw: string): {
  target: string;
  authorization: string | null;
} {
  const url = new URL(raw);
  if (!url.username && !url.password) return { target: raw, authorization: null };
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  url.username = "";
  url.password = "";
  const encoded = Buffer.from(`${user}:${password}`, "utf8").toString("base64");
  return { target: url.toString(), authorization: `Basic ${encoded}` };
}
