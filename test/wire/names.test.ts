import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/errors';
import { ProtocolStatus, RecordType, Role } from '../../src/wire/constants';
import { PROTOCOL_STATUS_NAMES, ROLE_NAMES, protocolStatusName, recordTypeName, refusalOf } from '../../src/wire/names';

describe('wire names', () => {
  it('names record types, roles and protocolStatus values as the spec does, and numbers what it does not define', () => {
    expect(recordTypeName(RecordType.GET_VALUES_RESULT)).toBe('GET_VALUES_RESULT');
    expect(recordTypeName(12)).toBe('type 12');
    expect(ROLE_NAMES[Role.FILTER]).toBe('FILTER');
    expect(PROTOCOL_STATUS_NAMES[ProtocolStatus.CANT_MPX_CONN]).toBe('CANT_MPX_CONN');
    expect(protocolStatusName(ProtocolStatus.OVERLOADED)).toBe('OVERLOADED');
    expect(protocolStatusName(9)).toBe('9');
  });

  it('maps each refusal to the error code clients report', () => {
    expect(refusalOf(ProtocolStatus.CANT_MPX_CONN).code).toBe(ErrorCode.CANT_MPX_CONN);
    expect(refusalOf(ProtocolStatus.OVERLOADED).code).toBe(ErrorCode.OVERLOADED);
    expect(refusalOf(ProtocolStatus.UNKNOWN_ROLE)).toMatchObject({
      code: ErrorCode.UNKNOWN_ROLE,
      reason: expect.stringContaining('(UNKNOWN_ROLE)'),
    });
    expect(refusalOf(7).code).toBe(ErrorCode.UNKNOWN_PROTOCOL_STATUS);
  });
});
