// Commands `derecho verify` reads on stdin while its group runs: kill a member, stop one (it
// leaves gracefully), start one, show the views. One command per line.
import { describeView } from '../sidecar/format.js';
import type { LocalGroup } from '../sidecar/local-group.js';

export const COMMAND_HELP = [
  'commands (one per line):',
  '  kill <id>    kill member <id> with SIGKILL (a crash)',
  '  leave <id>   stop member <id> with SIGTERM: it leaves the group gracefully',
  '  start <id>   start configured member <id> that is not running (a spare, or a killed one): it joins the group',
  '  views        print the view each running member installed last',
  '  help         this text',
];

export type GroupCommand =
  | { kind: 'kill'; id: number }
  | { kind: 'leave'; id: number }
  | { kind: 'start'; id: number }
  | { kind: 'views' }
  | { kind: 'help' }
  | { kind: 'none' };

/** Parses one line; throws an Error whose message tells what is wrong. */
export function parseGroupCommand(line: string): GroupCommand {
  const words = line.trim().split(/\s+/).filter((w) => w.length > 0);
  const [verb, arg, extra] = words;
  if (verb === undefined) return { kind: 'none' };
  const id = (): number => {
    if (arg === undefined || extra !== undefined || !/^\d+$/.test(arg)) {
      throw new Error(`usage: ${verb} <member id>, found "${line.trim()}"`);
    }
    return Number(arg);
  };
  switch (verb) {
    case 'kill':
      return { kind: 'kill', id: id() };
    case 'leave':
      return { kind: 'leave', id: id() };
    case 'start':
      return { kind: 'start', id: id() };
    case 'views':
    case 'help':
      if (arg !== undefined) throw new Error(`${verb} takes no argument, found "${line.trim()}"`);
      return { kind: verb };
    default:
      throw new Error(`unknown command "${verb}" (try help)`);
  }
}

export interface CommandContext {
  group: LocalGroup;
  print: (line: string) => void;
  /** Why `start` cannot be used in this run (e.g. messages too short to carry a sequence number). */
  startRefusal?: string;
  /** A member was killed or started: the run's verdict is judged view by view. */
  onMembershipChange: () => void;
  /** Set once the workload finished sending: members are no longer killed or started. */
  workloadOver?: boolean;
}

/** Runs one command; errors are printed, not thrown. */
export async function runGroupCommand(line: string, ctx: CommandContext): Promise<void> {
  let command: GroupCommand;
  try {
    command = parseGroupCommand(line);
  } catch (err) {
    ctx.print(`command: ${(err as Error).message}`);
    return;
  }
  const { group, print } = ctx;
  if ((command.kind === 'kill' || command.kind === 'leave' || command.kind === 'start') && ctx.workloadOver) {
    print(`command: the workload finished sending; members are no longer killed or started`);
    return;
  }
  try {
    switch (command.kind) {
      case 'none':
        return;
      case 'help':
        for (const l of COMMAND_HELP) print(l);
        return;
      case 'views':
        for (const [id, view] of group.currentViews()) print(`member ${id}: ${view ? describeView(view) : 'in no view (joining)'}`);
        for (const id of group.idleMembers()) print(`member ${id}: not running`);
        return;
      case 'kill': {
        if (!group.liveMembers().includes(command.id)) {
          print(`command: member ${command.id} is not running (running: ${group.liveMembers().join(', ') || 'none'})`);
          return;
        }
        ctx.onMembershipChange();
        print(`killing member ${command.id} (pid ${group.pidOf(command.id) ?? '?'})`);
        await group.killMember(command.id);
        return;
      }
      case 'leave': {
        if (!group.liveMembers().includes(command.id)) {
          print(`command: member ${command.id} is not running (running: ${group.liveMembers().join(', ') || 'none'})`);
          return;
        }
        ctx.onMembershipChange();
        print(`stopping member ${command.id} (pid ${group.pidOf(command.id) ?? '?'}): it leaves the group`);
        const report = await group.stopMember(command.id);
        print(
          report?.left
            ? `member ${command.id} left the group`
            : `member ${command.id} stopped without leaving gracefully (a view of 2 cannot lose a member, or it was in no view)`,
        );
        return;
      }
      case 'start': {
        if (ctx.startRefusal) {
          print(`command: cannot start member ${command.id}: ${ctx.startRefusal}`);
          return;
        }
        if (group.liveMembers().includes(command.id)) {
          print(`command: member ${command.id} is already running`);
          return;
        }
        ctx.onMembershipChange();
        print(`starting member ${command.id}`);
        await group.startMember(command.id);
        print(`member ${command.id} is in the group`);
        return;
      }
    }
  } catch (err) {
    print(`command: ${command.kind} failed: ${(err as Error).message}`);
  }
}
